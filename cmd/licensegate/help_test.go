package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestSubcommandHelpPointsToThisProject runs the built binary's help for
// each license-* subcommand: it ends with licensegate's README, not with
// Caddy's command-line documentation, which does not know these commands.
func TestSubcommandHelpPointsToThisProject(t *testing.T) {
	bin := t.TempDir() + "/licensegate"
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	for _, name := range []string{"license-keygen", "license-token"} {
		t.Run(name, func(t *testing.T) {
			out, err := exec.Command(bin, "help", name).CombinedOutput()
			if err != nil {
				t.Fatalf("%s help: %v\n%s", name, err, out)
			}
			help := string(out)
			if !strings.Contains(help, "licensegate/licensegate#readme") {
				t.Errorf("help of %s does not point to licensegate's README:\n%s", name, help)
			}
			if strings.Contains(help, "caddyserver.com/docs/command-line") {
				t.Errorf("help of %s points to Caddy's command-line docs:\n%s", name, help)
			}
		})
	}
}
