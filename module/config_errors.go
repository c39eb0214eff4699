package module

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// jwksFileError is the provisioning error of a jwks_file that cannot be
// read. A missing file is said in one short sentence that names the
// working directory, since a relative path is read from there, not from
// the Caddyfile's directory.
func jwksFileError(path string, err error) error {
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if filepath.IsAbs(path) {
		return fmt.Errorf("jwks_file %s: no such file", path)
	}
	wd, _ := os.Getwd()
	return fmt.Errorf("jwks_file %s: no such file in the working directory %s (a relative path is read from the directory Caddy runs in)", path, wd)
}

// placeholderRE finds the placeholders of an option's value.
var placeholderRE = regexp.MustCompile(`\{[^{}]+\}`)

// emptyAfterReplace is the error of an option (such as secret) whose value
// became empty when its placeholders were replaced: it names the
// placeholders, never the value.
func emptyAfterReplace(option, raw string) error {
	ph := placeholderRE.FindAllString(raw, -1)
	if len(ph) == 0 {
		return fmt.Errorf("%s is empty", option)
	}
	return fmt.Errorf("%s is empty after replacing %s: set it for the Caddy process (for {env.NAME}, the environment variable NAME)",
		option, strings.Join(ph, ", "))
}
