package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestTokensAreCachedAndExtended(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	first, err := loadTokens(dir, 3, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.pool) != 3 || first.hot == "" {
		t.Fatalf("%d pool tokens, hot %q", len(first.pool), first.hot)
	}
	more, err := loadTokens(dir, 5, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(more.pool) != 5 || more.pool[0] != first.pool[0] || more.pool[2] != first.pool[2] || more.hot != first.hot {
		t.Fatal("a larger pool did not keep the cached tokens")
	}
	// Every token is distinct, unexpired, and names the item.
	seen := map[string]bool{}
	for _, tok := range append([]string{more.hot}, more.pool...) {
		claims := jwt.MapClaims{}
		if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err != nil {
			t.Fatal(err)
		}
		jti, _ := claims["jti"].(string)
		if seen[jti] {
			t.Errorf("jti %q twice", jti)
		}
		seen[jti] = true
		if exp, _ := claims.GetExpirationTime(); exp == nil || exp.Before(now.Add(tokenMinLeft)) {
			t.Errorf("token expires at %v", exp)
		}
	}
	// Close to expiry, everything is minted anew.
	later, err := loadTokens(dir, 2, now.Add(tokenLifetime-tokenMinLeft/2))
	if err != nil {
		t.Fatal(err)
	}
	if later.pool[0] == first.pool[0] || len(later.pool) != 2 {
		t.Error("expiring tokens were reused")
	}
}

func TestSequenceFileIsOneBased(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seq.txt")
	if err := writeSequence(path, []int{0, 4, 2}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != "1\n5\n3\n" {
		t.Errorf("sequence file %q", b)
	}
}
