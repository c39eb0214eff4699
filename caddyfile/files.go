package caddyfile

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"
)

// warned holds the files already warned about, by position and path.
var warned sync.Map

// warnMissingFiles logs, at adapt time, a key file that does not exist,
// naming the Caddyfile line: the module's own error comes at provisioning,
// where Caddy knows no line. It is a warning, not an error, because a
// Caddyfile may be adapted on one machine ("caddy adapt") and run on
// another. Paths with placeholders are left to provisioning.
func warnMissingFiles(d *caddyfile.Dispenser, paths []string) {
	for _, p := range paths {
		if strings.Contains(p, "{") {
			continue
		}
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		at := d.File() + ":" + strconv.Itoa(d.Line())
		if _, dup := warned.LoadOrStore(at+"\x00"+p, true); dup {
			continue // Caddy may parse a directive twice in one adapt
		}
		wd, _ := os.Getwd()
		caddy.Log().Named("caddyfile").Warn("jwks_file does not exist (a relative path is read from the working directory)",
			zap.String("at", at), zap.String("path", p), zap.String("working_directory", wd))
	}
}
