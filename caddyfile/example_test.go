package caddyfile_test

import (
	"encoding/json"
	"fmt"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	lgcaddyfile "github.com/licensegate/licensegate/caddyfile"
)

// A license_issuer block becomes the handler's JSON config; the API key's
// secret stays a placeholder until the handler is provisioned.
func ExampleParseIssuer() {
	h, err := lgcaddyfile.ParseIssuer(caddyfile.NewTestDispenser(`license_issuer {
		issuer https://license.example.com
		signing_key /etc/licensegate/k1.private.jwk.json
		audience api.example.com
		default_validity 30d
		api_key partner-a {env.PARTNER_A_KEY} {
			products axesWord
			max_credits 1000
		}
	}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	out, _ := json.MarshalIndent(h, "", "  ")
	fmt.Println(string(out))
	// Output:
	// {
	//   "issuer": "https://license.example.com",
	//   "signing_keys": [
	//     "/etc/licensegate/k1.private.jwk.json"
	//   ],
	//   "audiences": [
	//     "api.example.com"
	//   ],
	//   "default_validity": 2592000000000000,
	//   "api_keys": [
	//     {
	//       "name": "partner-a",
	//       "secret": "{env.PARTNER_A_KEY}",
	//       "products": [
	//         "axesWord"
	//       ],
	//       "max_credits": 1000
	//     }
	//   ]
	// }
}
