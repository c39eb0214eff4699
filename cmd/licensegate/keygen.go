package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "license-keygen",
		Usage: "--alg <RS256|ES256|EdDSA|...> [--kid <id>] [--out-private <file>] [--out-jwks <file>] [--bits <n>] [--force]",
		Short: "Generates a signing key pair for license tokens (private JWK + public JWKS)",
		Long: `
Generates a new asymmetric key pair for signing license tokens and writes

  - the private key as a JWK (with kid, alg and use "sig") to --out-private,
    created with file mode 0600; keep it secret, it mints licenses;
  - the public key as a JWK Set (JWKS) to --out-jwks; it holds only public
    material and is what license_gate's jwks_file / jwks_url serve.

--alg is required. Supported: RS256, RS384, RS512, PS256, PS384, PS512 (RSA,
--bits, default 2048, at least 2048), ES256 (P-256), ES384 (P-384),
ES512 (P-521) and EdDSA (Ed25519).

--kid defaults to the key's RFC 7638 thumbprint (SHA-256, base64url).

Existing files are not overwritten unless --force is given.

Mint tokens with the private key using 'license-token'.
`,
		CobraFunc: keygenCobra,
	})
}

// keygenCobra sets up the command's flags and run function.
func keygenCobra(cmd *cobra.Command) {
	useOwnHelp(cmd)
	addKeygenFlags(cmd.Flags())
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return runKeygen(cmd.Flags(), cmd.OutOrStdout())
	}
}

func addKeygenFlags(fs *pflag.FlagSet) {
	fs.String("alg", "", "Signature algorithm: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA (required)")
	fs.String("kid", "", "Key ID (default: RFC 7638 thumbprint of the key)")
	fs.String("out-private", "private.jwk.json", "Where to write the private JWK (mode 0600)")
	fs.String("out-jwks", "jwks.json", "Where to write the public JWK Set")
	fs.Int("bits", 2048, "RSA modulus size in bits (RSA algorithms only; at least 2048)")
	fs.Bool("force", false, "Overwrite existing output files")
}

const (
	minRSABits = 2048
	maxRSABits = 16384
)

// generatedKey is the result of generateKeyPair.
type generatedKey struct {
	private jwk.Key
	public  jwk.Set
}

func runKeygen(fl *pflag.FlagSet, out io.Writer) error {
	algName, _ := fl.GetString("alg")
	kid, _ := fl.GetString("kid")
	outPriv, _ := fl.GetString("out-private")
	outJWKS, _ := fl.GetString("out-jwks")
	bits, _ := fl.GetInt("bits")
	force, _ := fl.GetBool("force")

	if algName == "" {
		return errors.New("--alg is required (one of " + strings.Join(keygenAlgNames(), ", ") + ")")
	}
	alg, ok := keygenAlg(algName)
	if !ok {
		return fmt.Errorf("unsupported --alg %q: use one of %s", algName, strings.Join(keygenAlgNames(), ", "))
	}
	if fl.Changed("bits") && !isRSA(alg) {
		return fmt.Errorf("--bits applies to RSA algorithms only, not %s (its key size is fixed by the curve)", alg)
	}
	if isRSA(alg) {
		if bits < minRSABits {
			return fmt.Errorf("refusing to generate a %d-bit RSA key: at least %d bits are required", bits, minRSABits)
		}
		if bits > maxRSABits {
			return fmt.Errorf("refusing to generate a %d-bit RSA key: at most %d bits are supported", bits, maxRSABits)
		}
	}
	if fl.Changed("kid") && strings.TrimSpace(kid) == "" {
		return errors.New("--kid must not be empty (omit the flag to use the key's thumbprint)")
	}
	if outPriv == "" || outJWKS == "" {
		return errors.New("--out-private and --out-jwks must not be empty")
	}
	if samePath(outPriv, outJWKS) {
		return fmt.Errorf("--out-private and --out-jwks are the same file (%s)", outPriv)
	}
	if !force {
		for _, p := range []string{outPriv, outJWKS} {
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("%s already exists; use --force to overwrite it", p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}

	gk, err := generateKeyPair(alg, bits, kid)
	if err != nil {
		return err
	}
	privJSON, err := marshalJSONIndent(gk.private)
	if err != nil {
		return fmt.Errorf("encoding private key: %w", err)
	}
	pubJSON, err := marshalJSONIndent(gk.public)
	if err != nil {
		return fmt.Errorf("encoding public key set: %w", err)
	}
	if err := writeFileMode(outPriv, privJSON, 0o600, force); err != nil {
		return err
	}
	if err := writeFileMode(outJWKS, pubJSON, 0o644, force); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote private key %s (alg %s, kid %s) — keep it secret\n", outPriv, alg, gk.private.KeyID())
	fmt.Fprintf(out, "wrote public key set %s\n", outJWKS)
	return nil
}

var keygenAlgs = []jwa.SignatureAlgorithm{
	jwa.RS256, jwa.RS384, jwa.RS512,
	jwa.PS256, jwa.PS384, jwa.PS512,
	jwa.ES256, jwa.ES384, jwa.ES512,
	jwa.EdDSA,
}

func keygenAlgNames() []string {
	names := make([]string, len(keygenAlgs))
	for i, a := range keygenAlgs {
		names[i] = a.String()
	}
	return names
}

// keygenAlg matches name case-insensitively against the supported algorithms.
func keygenAlg(name string) (jwa.SignatureAlgorithm, bool) {
	for _, a := range keygenAlgs {
		if strings.EqualFold(a.String(), name) {
			return a, true
		}
	}
	return "", false
}

func isRSA(alg jwa.SignatureAlgorithm) bool {
	switch alg {
	case jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512:
		return true
	}
	return false
}

// generateKeyPair creates a private JWK (kid, alg, use=sig) and the JWKS
// holding its public half. An empty kid means the RFC 7638 thumbprint.
func generateKeyPair(alg jwa.SignatureAlgorithm, rsaBits int, kid string) (*generatedKey, error) {
	var raw crypto.Signer
	var err error
	switch alg {
	case jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512:
		if rsaBits < minRSABits {
			return nil, fmt.Errorf("refusing to generate a %d-bit RSA key: at least %d bits are required", rsaBits, minRSABits)
		}
		raw, err = rsa.GenerateKey(rand.Reader, rsaBits)
	case jwa.ES256:
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jwa.ES384:
		raw, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jwa.ES512:
		raw, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case jwa.EdDSA:
		_, raw, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("unsupported algorithm %s", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("generating %s key: %w", alg, err)
	}

	priv, err := jwk.FromRaw(raw)
	if err != nil {
		return nil, fmt.Errorf("converting key to JWK: %w", err)
	}
	if err := priv.Set(jwk.AlgorithmKey, alg); err != nil {
		return nil, err
	}
	if err := priv.Set(jwk.KeyUsageKey, jwk.ForSignature); err != nil {
		return nil, err
	}
	if kid != "" {
		err = priv.Set(jwk.KeyIDKey, kid)
	} else {
		err = jwk.AssignKeyID(priv) // RFC 7638 thumbprint, SHA-256
	}
	if err != nil {
		return nil, fmt.Errorf("setting kid: %w", err)
	}

	// PublicKey copies kid, alg and use over to the public key.
	pub, err := priv.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("deriving public key: %w", err)
	}
	if isPriv, err := jwk.IsPrivateKey(pub); err != nil || isPriv {
		return nil, errors.New("internal error: derived public key still holds private material")
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, err
	}
	return &generatedKey{private: priv, public: set}, nil
}

func marshalJSONIndent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// writeFileMode writes data to path, created with the given permissions.
// Without overwrite, an existing file is an error.
func writeFileMode(path string, data []byte, perm os.FileMode, overwrite bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if !overwrite {
		flags |= os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, perm)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; use --force to overwrite it", path)
		}
		return err
	}
	// An overwritten file keeps its old mode: restrictive modes (the private
	// key's 0600) are set explicitly so a secret never stays group- or
	// world-readable. Permissive modes are left to the umask.
	if perm&0o077 == 0 {
		if err := f.Chmod(perm); err != nil {
			f.Close()
			return fmt.Errorf("setting mode of %s: %w", path, err)
		}
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

func samePath(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	if err1 != nil || err2 != nil {
		return filepath.Clean(a) == filepath.Clean(b)
	}
	return aa == bb
}
