package modelcheck

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/testing/onnxtest"
)

func TestLoad(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		data     []byte
		features []string
		// kind is the Unloadable's, "" when the model serves.
		kind Kind
		// says are parts of the message: what a human needs to act on it.
		says []string
	}{
		"a linear model with its three features":      {data: onnxtest.Linear(1, 2, 3), features: []string{"a", "b", "c"}},
		"a linear model serving the file's own names": {data: onnxtest.Linear(1, 2, 3)},
		"an operator the runtime refuses": {data: onnxtest.Refused(3), features: []string{"a", "b", "c"}, kind: Unsupported,
			says: []string{"FusedGemm", "com.microsoft", `"fused"`}},
		"a truncated file":   {data: onnxtest.Truncated(1, 2, 3), kind: Invalid, says: []string{"invalid model"}},
		"not a model at all": {data: []byte("not an ONNX model"), kind: Invalid, says: []string{"invalid model"}},
		"two features for three inputs": {data: onnxtest.Linear(1, 2, 3), features: []string{"a", "b"}, kind: Invalid,
			says: []string{"2 feature names are served, but the model takes 3 values per row"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m, err := Load(tc.data, tc.features)
			u := AsUnloadable(err)
			switch {
			case tc.kind == "" && err != nil:
				t.Fatalf("Load: %v, want a model", err)
			case tc.kind == "":
				if m == nil {
					t.Fatal("Load returned neither a model nor an error")
				}
				return
			case u == nil:
				t.Fatalf("Load: %v, want an *Unloadable of kind %s", err, tc.kind)
			case u.Kind != tc.kind:
				t.Errorf("kind %s, want %s (%v)", u.Kind, tc.kind, err)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message %q lacks %q", err, s)
				}
			}
			if tc.kind == Unsupported && !errors.Is(err, model.ErrUnsupported) {
				t.Errorf("%v does not wrap model.ErrUnsupported", err)
			}
		})
	}
}

func TestAsUnloadableTellsTransientFailures(t *testing.T) {
	t.Parallel()
	if u := AsUnloadable(errors.New("download https://models.example.com/m.onnx: connection refused")); u != nil {
		t.Errorf("a download failure is %+v, want transient (nil)", u)
	}
	if u := AsUnloadable(nil); u != nil {
		t.Errorf("nil is %+v", u)
	}
}

func TestCheckerGivesAVerdict(t *testing.T) {
	t.Parallel()
	c := NewChecker(time.Minute, 1<<20)
	if err := c.Check(context.Background(), onnxtest.Linear(1, 2), []string{"a", "b"}); err != nil {
		t.Errorf("a model that loads: %v", err)
	}
	if u := AsUnloadable(c.Check(context.Background(), onnxtest.Refused(2), nil)); u == nil || u.Kind != Unsupported {
		t.Errorf("FusedGemm: %+v, want Unsupported", u)
	}
}

// TestCheckerLeavesWhatItCannotDecide: a file past MaxBytes, a check while another one holds the
// slot, and a context already done are all "not checked", never a verdict. The slot is held by
// the test (as a compile that overran its deadline holds it) so that nothing here depends on how
// long a compile takes.
func TestCheckerLeavesWhatItCannotDecide(t *testing.T) {
	t.Parallel()
	fused := onnxtest.Refused(2)
	c := NewChecker(50*time.Millisecond, len(fused))
	if err := c.Check(context.Background(), make([]byte, len(fused)+1), nil); !errors.Is(err, ErrNotChecked) || AsUnloadable(err) != nil {
		t.Errorf("a file past MaxBytes: %v, want ErrNotChecked", err)
	}
	c.slot <- struct{}{}
	if err := c.Check(context.Background(), fused, nil); !errors.Is(err, ErrNotChecked) {
		t.Errorf("with the slot taken: %v, want ErrNotChecked", err)
	}
	<-c.slot
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.slot <- struct{}{}
	if err := c.Check(ctx, fused, nil); !errors.Is(err, ErrNotChecked) {
		t.Errorf("with ctx done: %v, want ErrNotChecked", err)
	}
	<-c.slot
	if u := AsUnloadable(c.Check(context.Background(), fused, nil)); u == nil {
		t.Error("with the slot free again, no verdict")
	}
}
