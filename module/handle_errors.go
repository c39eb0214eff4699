package module

import (
	"fmt"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/licensegate/licensegate/policy"
)

// The values of the errors option.
const (
	// ErrorsRespond answers a reject with the 10Duke-style body (the default).
	ErrorsRespond = "respond"
	// ErrorsHandle returns a reject to Caddy as an HTTP error, so that the
	// site's handle_errors routes render the response.
	ErrorsHandle = "handle"
)

// provisionErrors reads the errors option.
func (g *Gate) provisionErrors() error {
	switch g.Errors {
	case "", ErrorsRespond:
		g.handleErrors = false
	case ErrorsHandle:
		g.handleErrors = true
	default:
		return fmt.Errorf("errors must be %s or %s, not %q", ErrorsRespond, ErrorsHandle, g.Errors)
	}
	return nil
}

// handledError is a reject as Caddy's handlers return errors: a site's
// handle_errors then sees {http.error.status_code} = status and
// {http.error.message} = "<code>: <detail>", and errors.As finds the
// *policy.Reject. The headers of the reject (WWW-Authenticate, Retry-After,
// RateLimit) are already set on the response and stay unless the error
// routes change them; {http.license.error_code} names the code.
func handledError(status int, rej *policy.Reject) error {
	return caddyhttp.Error(status, rej)
}
