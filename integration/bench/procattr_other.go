//go:build !linux

package main

import "os/exec"

// setProcAttr has nothing to set outside Linux; the harness stops its
// children itself.
func setProcAttr(*exec.Cmd) {}
