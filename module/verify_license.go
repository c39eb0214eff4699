package module

import (
	"context"

	"github.com/licensegate/licensegate/policy"
)

// VerifyLicense verifies token as the gate verifies a request's token
// (size, signature by a key of its sources, bound issuer, audience,
// algorithm, typ, exp, claims) and returns its license. Other handlers
// use it to accept the tokens a gate would: license_issuer's /authz/
// takes licenses of trusted OpenID issuers this way. The constraint
// checks (items, version, hardware, address) are the caller's.
func (g *Gate) VerifyLicense(ctx context.Context, token string) (*policy.License, *policy.Reject) {
	if token == "" {
		return nil, policy.Rejectf(policy.CodeNotAuthorized, "no token")
	}
	if len(token) > g.maxTokenSize {
		return nil, policy.Rejectf(policy.CodeNotAuthorized, "token of %d bytes exceeds max_token_size %d", len(token), g.maxTokenSize)
	}
	ent, rej := g.verifier.verify(ctx, token, g.now())
	if rej != nil {
		return nil, rej
	}
	return ent.lic, nil
}
