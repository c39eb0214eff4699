package main

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// benchItem is the licensed item every token carries and the gate requires,
// so the policy check does real work.
const benchItem = "bench"

// benchCredits is large enough never to run out: every request of a gate
// scenario is a real charge.
const benchCredits = 1_000_000_000_000

// benchIssuer is the iss of the bench tokens; their counters are kept
// under it.
const benchIssuer = "licensegate-bench"

// Minted tokens are kept in a cache directory between runs (signing 100,000
// RS256 tokens takes minutes on a small machine). They stay valid for
// tokenLifetime and are minted anew when less than tokenMinLeft is left or
// when tokenFormat changes.
const (
	tokenFormat   = 1
	tokenLifetime = 365 * 24 * time.Hour
	tokenMinLeft  = 7 * 24 * time.Hour
	kid           = "bench"
)

// tokens are the harness's signed tokens and the files wrk and Caddy read.
// The pools of every size are prefixes of one list, so a smaller pool's
// licenses are also the first of a larger one.
type tokens struct {
	hot      string
	hotJTI   string
	pool     []string
	jwksPath string
}

// tokenMeta describes the cache directory's contents.
type tokenMeta struct {
	Format  int       `json:"format"`
	Prefix  string    `json:"prefix"` // of every jti
	Count   int       `json:"count"`  // pool tokens in pool.txt
	Expires time.Time `json:"expires"`
}

// loadTokens returns at least n pool tokens from the cache directory,
// minting (and adding to the cache) whatever is missing.
func loadTokens(dir string, n int, now time.Time) (*tokens, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	keyPath := filepath.Join(dir, "key.pem")
	metaPath := filepath.Join(dir, "meta.json")
	poolPath := filepath.Join(dir, "pool.txt")
	t := &tokens{jwksPath: filepath.Join(dir, "jwks.json")}

	var meta tokenMeta
	key, err := readKey(keyPath)
	if err == nil {
		var b []byte
		if b, err = os.ReadFile(metaPath); err == nil {
			err = json.Unmarshal(b, &meta)
		}
	}
	if err != nil || meta.Format != tokenFormat || meta.Expires.Sub(now) < tokenMinLeft || meta.Prefix == "" {
		// Start afresh: new key, new jti prefix, new expiry.
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, err
		}
		if err := writeKey(keyPath, key); err != nil {
			return nil, err
		}
		var run [6]byte
		_, _ = rand.Read(run[:])
		meta = tokenMeta{Format: tokenFormat, Prefix: "bench-" + hex.EncodeToString(run[:]) + "-",
			Expires: now.Add(tokenLifetime).UTC().Truncate(time.Second)}
		if err := os.WriteFile(poolPath, nil, 0o600); err != nil {
			return nil, err
		}
	}
	if err := writeJWKS(t.jwksPath, key); err != nil {
		return nil, err
	}
	m := &minter{key: key, prefix: meta.Prefix, iat: meta.Expires.Add(-tokenLifetime), exp: meta.Expires}
	t.hotJTI = meta.Prefix + "hot"
	if t.hot, err = m.sign(t.hotJTI, "hot"); err != nil {
		return nil, err
	}
	if t.pool, err = readLines(poolPath); err != nil {
		return nil, err
	}
	if len(t.pool) != meta.Count {
		// A run interrupted while appending: keep what the meta vouches for.
		t.pool = t.pool[:min(len(t.pool), meta.Count)]
		meta.Count = len(t.pool)
		if err := os.WriteFile(poolPath, []byte(joinLines(t.pool)), 0o600); err != nil {
			return nil, err
		}
	}
	if missing := n - len(t.pool); missing > 0 {
		logf("minting %d pool tokens (RS256) into %s", missing, dir)
		start := time.Now()
		more, err := m.mintRange(len(t.pool), n)
		if err != nil {
			return nil, err
		}
		f, err := os.OpenFile(poolPath, os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, err
		}
		_, werr := f.WriteString(joinLines(more))
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, werr
		}
		t.pool = append(t.pool, more...)
		logf("minted in %v", time.Since(start).Round(time.Millisecond))
	}
	meta.Count = len(t.pool)
	b, _ := json.Marshal(meta)
	if err := os.WriteFile(metaPath, b, 0o600); err != nil {
		return nil, err
	}
	return t, nil
}

// writePool writes the first n pool tokens, one a line, for wrk.
func (t *tokens) writePool(path string, n int) error {
	return os.WriteFile(path, []byte(joinLines(t.pool[:n])), 0o644)
}

// minter signs the harness's tokens.
type minter struct {
	key      *rsa.PrivateKey
	prefix   string
	iat, exp time.Time
}

func (m *minter) sign(jti, sub string) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": benchIssuer, "sub": sub, "jti": jti,
		"iat": m.iat.Unix(), "exp": m.exp.Unix(),
		"items": []string{benchItem}, "credits": benchCredits,
	})
	tok.Header["kid"] = kid
	return tok.SignedString(m.key)
}

// mintRange signs pool tokens from (inclusive) to to, in parallel.
func (m *minter) mintRange(from, to int) ([]string, error) {
	out := make([]string, to-from)
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for i := from + w; i < to; i += workers {
				s, err := m.sign(fmt.Sprintf("%s%06d", m.prefix, i), fmt.Sprintf("user-%d", i))
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
				out[i-from] = s
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	return out, nil
}

func readKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block in " + path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA key: " + path)
	}
	return rk, nil
}

func writeKey(path string, key *rsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

func writeJWKS(path string, key *rsa.PrivateKey) error {
	b64 := base64.RawURLEncoding.EncodeToString
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
	}}})
	return os.WriteFile(path, jwks, 0o644)
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

func joinLines(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return strings.Join(v, "\n") + "\n"
}
