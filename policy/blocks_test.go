package policy

import "testing"

func TestBlockGrantable(t *testing.T) {
	cases := []struct {
		name               string
		left, leased, want int64
		ok                 bool
	}{
		{"no block asked", 1000, 0, 0, false},
		{"first block of a big budget", 1100, 0, 100, true},
		{"just short of the factor", 1099, 0, 100, false},
		{"others' blocks raise the floor", 2000, 100, 100, false},
		{"floor met with others' blocks", 2200, 100, 100, true},
		{"the last stretch is one by one", 10, 0, 1, false},
		{"more than is left", 50, 0, 100, false},
		{"over MaxBlock", 1 << 62, 0, MaxBlock + 1, false},
		{"MaxBlock of a huge budget", 1 << 62, 0, MaxBlock, true},
		{"negative leased is refused", 1 << 40, -1, 10, false},
		{"huge leased does not overflow", 1 << 62, 1 << 62, 10, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := BlockGrantable(c.left, c.leased, c.want); got != c.ok {
				t.Fatalf("BlockGrantable(%d, %d, %d) = %v, want %v", c.left, c.leased, c.want, got, c.ok)
			}
		})
	}
}
