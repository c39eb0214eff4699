package issuer

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/policy"
)

func TestParseAuthzFormat(t *testing.T) {
	tests := []struct {
		suffix string
		want   AuthzFormat
		ok     bool
	}{
		{"", FormatText, true},
		{".txt", FormatText, true},
		{".json", FormatJSON, true},
		{".jwt", FormatJWT, true},
		{".xml", 0, false},
		{"jwt", 0, false},
		{".jwt/", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseAuthzFormat(tt.suffix)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseAuthzFormat(%q) = %v, %v; want %v, %v", tt.suffix, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseAuthzReadsTenDukeRequests(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  AuthzRequest
	}{
		{"one item", "AppFeature-XYZ",
			AuthzRequest{Items: []AuthzItem{{Name: "AppFeature-XYZ"}}}},
		{"one item with its device and name", "AppFeature-XYZ&hw=T29qb1RoYWU3aWV6MENoYWlkaWUyZXRoMWphMmFoQmUK;name=Laptop%201",
			AuthzRequest{Items: []AuthzItem{{Name: "AppFeature-XYZ"}}, Hardware: "T29qb1RoYWU3aWV6MENoYWlkaWUyZXRoMWphMmFoQmUK",
				HardwareName: "Laptop 1", HardwareSent: true}},
		{"a renewal with leaseId", "AppFeature-XYZ&hw=dev&leaseId=d04551aa-7c0a-47a6-aa85-ed345e591ea9",
			AuthzRequest{Items: []AuthzItem{{Name: "AppFeature-XYZ", LeaseID: "d04551aa-7c0a-47a6-aa85-ed345e591ea9"}},
				Hardware: "dev", HardwareSent: true}},
		{"a renewal of several items, each with its lease", "AppFeature-XYZ=;leaseId=l1&AppFeature-ABC=;leaseId=l2&hw=dev",
			AuthzRequest{Items: []AuthzItem{{Name: "AppFeature-XYZ", LeaseID: "l1"}, {Name: "AppFeature-ABC", LeaseID: "l2"}},
				Hardware: "dev", HardwareSent: true}},
		{"every option", "a&b&version=1.6.14&consumeCount=3&consumeDuration=60000&doConsume=false&consumptionMode=checkout&process=42;name=app&licenseId=L1",
			AuthzRequest{Items: []AuthzItem{{Name: "a"}, {Name: "b"}}, Version: "1.6.14", VersionSent: true, ConsumeCount: 3,
				ConsumeDuration: time.Minute, CheckOnly: true, LicenseID: "L1"}},
		{"doConsume=true consumes", "a&doConsume=true", AuthzRequest{Items: []AuthzItem{{Name: "a"}}}},
		{"percent-encoded item names are decoded", "App%20Feature%26X", AuthzRequest{Items: []AuthzItem{{Name: "App Feature&X"}}}},
		{"license selectors on an item are accepted", "a=;ownerUserId=u1;licenseId=L2",
			AuthzRequest{Items: []AuthzItem{{Name: "a"}}, LicenseID: "L2"}},
		{"empty parts are skipped", "&a&&b&", AuthzRequest{Items: []AuthzItem{{Name: "a"}, {Name: "b"}}}},
		{"a parameter repeated with the same value is one", "a&hw=x&hw=x",
			AuthzRequest{Items: []AuthzItem{{Name: "a"}}, Hardware: "x", HardwareSent: true}},
		{"release names the lease", "release&d04551aa-7c0a", AuthzRequest{Release: "d04551aa-7c0a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rej := ParseAuthz(tt.query)
			if rej != nil {
				t.Fatalf("ParseAuthz(%q) rejected: %v", tt.query, rej)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Fatalf("ParseAuthz(%q) =\n %+v\nwant\n %+v", tt.query, *got, tt.want)
			}
		})
	}
}

func TestParseAuthzRefusesBadRequests(t *testing.T) {
	long := strings.Repeat("x", MaxAuthzValue+1)
	many := ""
	for i := range MaxAuthzItems + 1 {
		many += "item" + strconv.Itoa(i) + "&"
	}
	tests := []struct {
		name  string
		query string
		code  policy.Code
		items int // items the answer can name
	}{
		{"no item is MissingArguments", "hw=dev&version=1.0", policy.CodeMissingArguments, 0},
		{"an empty query is MissingArguments", "", policy.CodeMissingArguments, 0},
		{"release without a lease id is MissingArguments", "release", policy.CodeMissingArguments, 0},
		{"a zero consumeCount is BadArgument", "a&consumeCount=0", policy.CodeBadArgument, 1},
		{"a negative consumeCount is BadArgument", "a&consumeCount=-1", policy.CodeBadArgument, 1},
		{"a consumeCount that is no number is BadArgument", "a&consumeCount=ten", policy.CodeBadArgument, 1},
		{"a consumeCount beyond the credits range is BadArgument", "a&consumeCount=9223372036854775807", policy.CodeBadArgument, 1},
		{"a consumeDuration that is no number is BadArgument", "a&consumeDuration=1h", policy.CodeBadArgument, 1},
		{"a zero consumeDuration is BadArgument", "a&consumeDuration=0", policy.CodeBadArgument, 1},
		{"doConsume other than true or false is BadArgument", "a&doConsume=no", policy.CodeBadArgument, 1},
		{"an unknown consumptionMode is BadArgument", "a&consumptionMode=forever", policy.CodeBadArgument, 1},
		{"an empty hw is BadArgument", "a&hw=", policy.CodeBadArgument, 1},
		{"an overlong hw is BadArgument", "a&hw=" + long, policy.CodeBadArgument, 1},
		{"hw twice with different values is BadArgument", "a&hw=x&hw=y", policy.CodeBadArgument, 1},
		{"an empty version is BadArgument", "a&version=", policy.CodeBadArgument, 1},
		{"an overlong item name is BadArgument", long, policy.CodeBadArgument, 0},
		{"an item named like a lease claim is BadArgument", "a&exp", policy.CodeBadArgument, 1},
		{"an item named like an error field is BadArgument", "a_errorCode", policy.CodeBadArgument, 0},
		{"an item named twice is BadArgument", "a&b&a", policy.CodeBadArgument, 2},
		{"too many items is BadArgument", many, policy.CodeBadArgument, MaxAuthzItems},
		{"an item with a plain value is BadArgument", "a=1", policy.CodeBadArgument, 0},
		{"an item attribute that is unknown is BadArgument", "a=;color=red", policy.CodeBadArgument, 0},
		{"an item with an empty leaseId is BadArgument", "a=;leaseId=", policy.CodeBadArgument, 0},
		{"one leaseId for several items is BadArgument", "a&b&leaseId=l1", policy.CodeBadArgument, 2},
		{"leaseId differing from the item's is BadArgument", "a=;leaseId=l1&leaseId=l2", policy.CodeBadArgument, 1},
		{"broken percent-encoding is BadArgument", "a%zz", policy.CodeBadArgument, 0},
		{"release after items is BadArgument", "a&release", policy.CodeBadArgument, 1},
		{"release with two ids is BadArgument", "release&l1&l2", policy.CodeBadArgument, 0},
		{"release with a parameter is BadArgument", "release&hw=x", policy.CodeBadArgument, 0},
		{"an overlong query is BadArgument", "a&hw=" + strings.Repeat("y", MaxAuthzQuery), policy.CodeBadArgument, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rej := ParseAuthz(tt.query)
			if rej == nil {
				t.Fatalf("ParseAuthz accepted %.80q: %+v", tt.query, got)
			}
			if rej.Code != tt.code || rej.Detail == "" {
				t.Fatalf("got %s (%q); want %s with a detail", rej.Code, rej.Detail, tt.code)
			}
			if got == nil || len(got.Items) != tt.items {
				t.Fatalf("the reject can name %d items; want %d", len(got.Items), tt.items)
			}
			if len(rej.Detail) > 300 {
				t.Fatalf("detail of %d bytes echoes too much of the request", len(rej.Detail))
			}
		})
	}
}

// FuzzParseAuthz: any query parses or is refused with a request code,
// never panics, and what parses keeps the documented bounds.
func FuzzParseAuthz(f *testing.F) {
	for _, s := range []string{
		"AppFeature-XYZ&hw=T29q;name=x", "a=;leaseId=l1&b=;leaseId=l2&hw=d", "release&l1",
		"a&consumeCount=3&consumeDuration=1000&doConsume=false", "a%zz", "&&", "a=;licenseId=L;leaseId=x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		req, rej := ParseAuthz(q)
		if req == nil {
			t.Fatal("nil request")
		}
		if rej != nil {
			if rej.Code != policy.CodeBadArgument && rej.Code != policy.CodeMissingArguments {
				t.Fatalf("code %s", rej.Code)
			}
			return
		}
		if (req.Release == "") == (len(req.Items) == 0) {
			t.Fatalf("a request must name items or a release, not both or neither: %+v", req)
		}
		if len(req.Items) > MaxAuthzItems {
			t.Fatalf("%d items", len(req.Items))
		}
		seen := map[string]bool{}
		for _, it := range req.Items {
			if it.Name == "" || len(it.Name) > MaxAuthzValue || leaseClaimNames[it.Name] || seen[it.Name] {
				t.Fatalf("item %q accepted", it.Name)
			}
			seen[it.Name] = true
		}
		if req.ConsumeCount < 0 || req.ConsumeDuration < 0 || len(req.Hardware) > MaxAuthzValue {
			t.Fatalf("out of bounds: %+v", req)
		}
	})
}
