package module

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/licensegate/licensegate/policy"
)

// facts reads what the license's constraints need from the request: the
// client address, the version and hardware id (only when the token
// constrains them) and the match_claim values. A version or hardware id
// that cannot be used is a BadArgument reject, before anything is charged.
func (g *Gate) facts(r *http.Request, lic *policy.License, repl *caddy.Replacer, q *policy.Request) *policy.Reject {
	if lic.IPs != nil {
		q.ClientIP = clientIP(r)
	}
	var rej *policy.Reject
	if lic.Versions != nil {
		if q.Version, q.VersionSent, rej = readAnchor("client version", g.VersionFrom, r, false); rej != nil {
			return rej
		}
	}
	if lic.HasHardware || lic.Seats > 0 {
		if q.Hardware, q.HardwareSent, rej = readAnchor("hardware id", g.HardwareFrom, r, true); rej != nil {
			return rej
		}
	}
	if len(g.matchValues) > 0 {
		q.MatchValues = make([]string, len(g.matchValues))
		for i, v := range g.matchValues {
			if repl != nil {
				v = repl.ReplaceAll(v, "")
			}
			q.MatchValues[i] = v
		}
	}
	return nil
}

// readAnchor reads a client anchor from every configured source, every
// value of each (empty values count as not sent). All values sent must
// agree, since the gate checks one and an upstream may read another; each
// must be at most policy.MaxAnchorSize bytes. A hardware id is the part
// before a 10Duke ";name=<device name>" suffix, which is no part of the
// id: values differing only in the name agree.
func readAnchor(what string, sources []ValueSource, r *http.Request, hardware bool) (string, bool, *policy.Reject) {
	var id string
	var from ValueSource
	var rej *policy.Reject
	found := false
	for _, s := range sources {
		s.visit(r, func(v string, ok bool) bool {
			switch {
			case !ok:
				rej = policy.Rejectf(policy.CodeBadArgument, "the %s in %s is not valid URL encoding", what, s)
			case len(v) > policy.MaxAnchorSize:
				rej = policy.Rejectf(policy.CodeBadArgument, "the %s in %s has %d bytes, more than %d",
					what, s, len(v), policy.MaxAnchorSize)
			case v == "":
				return true
			default:
				if hardware {
					v, _, _ = strings.Cut(v, ";name=")
				}
				if !found {
					id, from, found = v, s, true
					return true
				}
				if v == id {
					return true
				}
				rej = policy.Rejectf(policy.CodeBadArgument, "two different %ss sent (%s%s)", what, from, alsoIn(from, s))
			}
			return false
		})
		if rej != nil {
			return "", false, rej
		}
	}
	return id, found, nil
}

// alsoIn names the second source of a conflict when it is another one.
func alsoIn(first, second ValueSource) string {
	if first == second {
		return ", twice"
	}
	return fmt.Sprintf(" and %s", second)
}
