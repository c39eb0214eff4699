package policy

import (
	"context"
	"testing"
	"time"
)

func TestMemoryIsRevoked(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	lic := LicenseKey{Issuer: "iss", Key: "lic"}
	m := NewMemory()
	if err := m.Revoke(context.Background(), lic, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		key  LicenseKey
		at   time.Time
		want bool
	}{
		{"a revoked license is revoked before its end", lic, now, true},
		{"a revoked license is not revoked at its end", lic, now.Add(time.Hour), false},
		{"the same key of another issuer is not revoked", LicenseKey{Issuer: "other", Key: "lic"}, now, false},
		{"an unknown license is not revoked", LicenseKey{Key: "unknown"}, now, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r, known := m.IsRevoked(tc.key, tc.at); r != tc.want || !known {
				t.Fatalf("IsRevoked = %v, %v; want %v, true", r, known, tc.want)
			}
		})
	}
	if n := m.Sweep(now); n != 1 {
		t.Fatalf("%d entries; asking created one", n)
	}
	if err := m.Unrevoke(context.Background(), lic); err != nil {
		t.Fatal(err)
	}
	if r, _ := m.IsRevoked(lic, now); r {
		t.Fatal("still revoked after Unrevoke")
	}
}
