package module

import "net/http"

// isPreflight reports whether r is a CORS preflight that carries nothing:
// OPTIONS with Origin and Access-Control-Request-Method, and no body (no
// Content-Length above 0, no Transfer-Encoding; an HTTP/2 or HTTP/3
// request of unknown length counts as having one). A preflight with a body
// is checked like any request, so pass_preflight cannot carry data past
// the gate.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.ContentLength == 0 && len(r.TransferEncoding) == 0 &&
		r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}
