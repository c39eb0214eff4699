package issuer

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/licensegate/licensegate/policy"
)

// fuzzRequest runs one body through a decoder and the common checks: a
// body is either refused with a 400 or 403 problem, or yields claims that
// the gate's own decoding accepts after a JSON round trip.
func fuzzRequest(f *testing.F, decode decoder, seeds ...string) {
	for _, s := range seeds {
		f.Add(s)
	}
	h, _, _ := testHandler(f)
	key := h.keys[2] // open: no limits
	names := policy.DefaultClaimNames()
	f.Fuzz(func(t *testing.T, body string) {
		r, p := decode([]byte(body))
		if p == nil {
			var t2 *issued
			t2, p = h.complete(key, r, testNow)
			if p == nil {
				raw, err := json.Marshal(t2.claims)
				if err != nil {
					t.Fatalf("claims do not encode: %v", err)
				}
				var back map[string]any
				if err := json.Unmarshal(raw, &back); err != nil {
					t.Fatalf("issued claims a JWT library cannot read: %v\n%s", err, raw)
				}
				if _, err := policy.Decode(back, &names); err != nil {
					t.Fatalf("issued claims the gate refuses: %v\n%s", err, raw)
				}
				return
			}
		}
		if p.Status != http.StatusBadRequest && p.Status != http.StatusForbidden {
			t.Fatalf("status %d for %q", p.Status, body)
		}
		if p.Detail == "" || p.Kind == "" {
			t.Fatalf("problem without detail or kind: %+v", p)
		}
	})
}

func FuzzAxes4Request(f *testing.F) {
	fuzzRequest(f, decodeAxes4, docAxes4,
		`{"CustomerIdentifier":"c","ProductEnum":"axesWord","Version":"1-3.4-6.7-9","StartDate":null}`,
		`{"customerIdentifier":"c","productEnum":"axesWord","customeridentifier":"d"}`,
		`{"customerIdentifier":"c","productEnum":"axesWord","expireDate":"2030-01-01T00:00:00.1234567-05:00"}`)
}

func FuzzData8Request(f *testing.F) {
	fuzzRequest(f, decodeData8,
		`{"sub":"markc","credits":3,"ip":"127.0.0.1","expires":"2026-12-31T00:00:00"}`,
		`{"credits":1e3,"ip":["::ffff:10.0.0.1/120"]}`, `{"ip":[]}`, `{"credits":"3"}`)
}

func FuzzNativeRequest(f *testing.F) {
	fuzzRequest(f, decodeNative,
		`{"sub":"bob","items":["axesWord"],"credits":"7","ver":["1.*"],"hw":"M1","ip":"192.0.2.1","seats":2,"ibb":1780000000,"ibe":1790000000,"lic":7}`,
		`{"axesWord":true,"extra":{"nested":[1,2,{"x":null}]}}`, `{"exp":1e300}`, `{"credits":9007199254740992}`)
}
