package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
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

// tokens are the harness's signed tokens and the files wrk and Caddy read.
type tokens struct {
	hot      string
	hotJTI   string
	pool     []string
	poolJTI  []string
	jwksPath string
	poolPath string
}

// mintTokens makes an RSA key, writes its public JWKS, and mints the hot
// token and the pool (distinct jti each), in parallel.
func mintTokens(dir string, n int) (*tokens, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	const kid = "bench"
	b64 := base64.RawURLEncoding.EncodeToString
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
	}}})
	t := &tokens{jwksPath: filepath.Join(dir, "jwks.json"), poolPath: filepath.Join(dir, "pool.txt")}
	if err := os.WriteFile(t.jwksPath, jwks, 0o644); err != nil {
		return nil, err
	}

	var run [6]byte
	_, _ = rand.Read(run[:])
	prefix := "bench-" + hex.EncodeToString(run[:]) + "-"
	now := time.Now()
	sign := func(jti, sub string) (string, error) {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
			"iss": benchIssuer, "sub": sub, "jti": jti,
			"iat": now.Unix(), "exp": now.Add(24 * time.Hour).Unix(),
			"items": []string{benchItem}, "credits": benchCredits,
		})
		tok.Header["kid"] = kid
		return tok.SignedString(key)
	}
	t.hotJTI = prefix + "hot"
	if t.hot, err = sign(t.hotJTI, "hot"); err != nil {
		return nil, err
	}
	t.pool = make([]string, n)
	t.poolJTI = make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				jti := fmt.Sprintf("%s%05d", prefix, i)
				s, err := sign(jti, fmt.Sprintf("user-%d", i))
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
				t.pool[i], t.poolJTI[i] = s, jti
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	if err := os.WriteFile(t.poolPath, []byte(strings.Join(t.pool, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	return t, nil
}
