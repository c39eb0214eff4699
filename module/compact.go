package module

import (
	"encoding/base64"
	"strings"

	"github.com/licensegate/licensegate/policy"
)

// strictB64 is the only encoding of a JWS segment: base64url without
// padding, trailing bits zero (RFC 7515 §2, §7.1).
var strictB64 = base64.RawURLEncoding.Strict()

// checkCompact refuses what the JWT parser would silently accept: anything
// but three segments of the base64url alphabet (padding, the standard
// alphabet, whitespace — Go's decoder skips CR and LF — a 5-segment JWE),
// non-zero trailing bits (another spelling of the same signature), and a
// header or claims set that is not one JSON object free of duplicate keys
// and of nesting deeper than maxJSONDepth (encoding/json takes the last of
// duplicate keys where another parser may take the first, and ignores data
// after the claims object). It runs once per token that is not cached,
// after the size cap.
func checkCompact(tok string) *policy.Reject {
	dots := 0
	for i := 0; i < len(tok); i++ {
		switch c := tok[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.':
			dots++
		default:
			return policy.Rejectf(policy.CodeNotAuthorized, "malformed token: byte 0x%02x at offset %d is not base64url", c, i)
		}
	}
	if dots != 2 {
		return policy.Rejectf(policy.CodeNotAuthorized, "malformed token: %d segments, a JWS has 3", dots+1)
	}
	var buf [4096]byte
	rest := tok
	for i, name := range [...]string{"header", "claims", "signature"} {
		seg, after, _ := strings.Cut(rest, ".")
		rest = after
		// The conversion does not copy: the compiler sees that the bytes
		// are only read.
		doc, err := strictB64.AppendDecode(buf[:0], []byte(seg))
		if err != nil {
			return policy.Rejectf(policy.CodeNotAuthorized, "malformed token: %s is not canonical base64url", name)
		}
		if i < 2 {
			if err := checkJSON(doc); err != nil {
				return policy.Rejectf(policy.CodeNotAuthorized, "malformed token: %s: %v", name, err)
			}
		}
	}
	return nil
}
