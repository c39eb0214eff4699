package redisstore

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/policy"
)

func TestKeysAreTheBaseAndTheirSuffix(t *testing.T) {
	s := &Store{prefix: "lg:"}
	for _, k := range []policy.LicenseKey{
		{Key: "jti-1"},
		{Issuer: "https://iss.example", Key: "lic-7"},
		{Issuer: strings.Repeat("i", 300), Key: strings.Repeat("k", 300)}, // longer than the stack buffer
	} {
		h := sha256.Sum256([]byte(k.Issuer + "\x00" + k.Key))
		if got, want := Tag(k), hex.EncodeToString(h[:TagLen/2]); got != want {
			t.Errorf("Tag = %s, want %s", got, want)
		}
		keys := s.keys(k)
		if len(keys) != len(keySuffixes) {
			t.Fatalf("%d keys, want %d", len(keys), len(keySuffixes))
		}
		for i, suffix := range keySuffixes {
			if want := "lg:{" + Tag(k) + "}:" + suffix; keys[i] != want {
				t.Errorf("key %d = %q, want %q", i, keys[i], want)
			}
		}
		for _, bucket := range []int64{0, 17649216000, 1<<63 - 1} {
			at := s.keysAt(k, bucket)
			for i, suffix := range keySuffixes {
				if i == reqIndex {
					suffix += ":" + strconv.FormatInt(bucket, 10)
				}
				if want := "lg:{" + Tag(k) + "}:" + suffix; at[i] != want {
					t.Errorf("keysAt(%d) key %d = %q, want %q", bucket, i, at[i], want)
				}
			}
		}
		args := evalArgs("evalsha", "hash", keys, []any{int64(1)})
		for i := range keys {
			if p, ok := args[3+i].(*string); !ok || *p != keys[i] {
				t.Errorf("argument %d is %#v, want a *string to %q", 3+i, args[3+i], keys[i])
			}
		}
	}
}

func TestKeysOfAChargeTakeTwoAllocationsWithTheirRequestBucket(t *testing.T) {
	s := &Store{prefix: DefaultPrefix}
	k := policy.LicenseKey{Issuer: "https://iss.example", Key: "lic-7"}
	if n := testing.AllocsPerRun(100, func() { _ = s.keys(k) }); n > 2 {
		t.Errorf("keys allocates %v times, want 2 (the string and the slice)", n)
	}
	bucket := reqBucket(time.Now().UnixMilli())
	if n := testing.AllocsPerRun(100, func() { _ = s.keysAt(k, bucket) }); n > 2 {
		t.Errorf("keysAt allocates %v times, want 2 (the string and the slice)", n)
	}
}
