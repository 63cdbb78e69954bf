// Package modelcheck decides whether a model file can serve, the same way in the pods that
// serve it and in the operator that rolls it out: the pods load it with Load and exit with
// ExitUnloadable when it cannot serve, and the operator runs Checker on the bytes it can read (a
// ConfigMap's) before any pod moves to them.
//
// A model that cannot serve is a deterministic failure: the bytes, or the bytes against the spec
// (the feature names), are wrong, and no restart, reschedule or wait changes that. It is told from
// a transient one (a download that failed, a file not there yet) by the type of the error: an
// *Unloadable.
package modelcheck

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/freightcast/freightcast/internal/model"
)

// ExitUnloadable is the exit code of a data-plane process whose model cannot serve, so that
// whoever reads the container's last state (the operator) tells it from a crash worth a restart.
// 78 is sysexits' EX_CONFIG: the configuration, not the program or the machine, is wrong.
const ExitUnloadable = 78

// Kind is why a model cannot serve.
type Kind string

const (
	// Unsupported: a valid ONNX model with something this runtime does not run (an operator, an
	// opset, an element type), named in the message.
	Unsupported Kind = "Unsupported"
	// Invalid: bytes that are not a consistent ONNX model, or a model that does not match the
	// feature names it is served with.
	Invalid Kind = "Invalid"
)

// Unloadable is a model that cannot serve, and why.
type Unloadable struct {
	Kind Kind
	Err  error
}

func (e *Unloadable) Error() string { return e.Err.Error() }
func (e *Unloadable) Unwrap() error { return e.Err }

// AsUnloadable returns the *Unloadable in err's chain, nil when err is not one (nil, or a
// failure that may pass).
func AsUnloadable(err error) *Unloadable {
	var u *Unloadable
	if errors.As(err, &u) {
		return u
	}
	return nil
}

// Load decodes and compiles data as the serving pods do, and checks it against features (the
// served feature names, in input-column order; none: the file's own). What makes the model
// unable to serve comes back as an *Unloadable.
func Load(data []byte, features []string) (*model.Model, error) {
	m, err := model.Load(data)
	switch {
	case errors.Is(err, model.ErrUnsupported):
		return nil, &Unloadable{Kind: Unsupported, Err: err}
	case err != nil:
		// Load's errors are all about the bytes: it does no I/O.
		return nil, &Unloadable{Kind: Invalid, Err: err}
	}
	if len(features) > 0 {
		if err := CheckFeatures(features, m.Metadata()); err != nil {
			return nil, &Unloadable{Kind: Invalid, Err: err}
		}
	}
	return m, nil
}

// CheckFeatures compares the served feature names with the model: its declared names when it has
// them, else at least the width of its one input.
func CheckFeatures(want []string, meta *model.Metadata) error {
	have := meta.Features
	if have == nil {
		if len(meta.Inputs) == 1 && meta.Inputs[0].RowSize() == len(want) {
			return nil
		}
		if len(meta.Inputs) != 1 {
			return fmt.Errorf("%d feature names are served, but the model has %d inputs; features map into a single input tensor", len(want), len(meta.Inputs))
		}
		return fmt.Errorf("%d feature names are served, but the model takes %d values per row", len(want), meta.Inputs[0].RowSize())
	}
	if len(want) != len(have) {
		return fmt.Errorf("%d feature names are served, the model declares %d: %s", len(want), len(have), strings.Join(have, ","))
	}
	for i := range want {
		if want[i] != have[i] {
			return fmt.Errorf("served feature %d is %q, the model declares %q there (model order: %s)", i, want[i], have[i], strings.Join(have, ","))
		}
	}
	return nil
}

// ErrNotChecked is returned by Checker.Check when it could not decide in time; the caller must
// then let the pods decide, as for a model it cannot read.
var ErrNotChecked = errors.New("model not checked")

// Checker runs Load on behalf of a process that must stay responsive (the operator's reconcile
// loop): one file at a time, and no caller waits longer than Timeout. The runtime bounds what a
// load may allocate (model.MaxModelBytes, 64 Mi elements per tensor, 16 Mi folded elements per
// model), MaxBytes bounds the files this checker accepts, and the one-at-a-time rule keeps a
// hostile file that outlives its deadline from being compiled twice at once: Go cannot stop
// the goroutine, so the compile that overran finishes in the background, holding the one slot,
// and later checks return ErrNotChecked until it is done.
type Checker struct {
	// Timeout is the longest a Check waits for its verdict.
	Timeout time.Duration
	// MaxBytes is the largest file checked; larger ones are left to the pods (ErrNotChecked).
	MaxBytes int

	slot chan struct{}
}

// NewChecker makes a Checker.
func NewChecker(timeout time.Duration, maxBytes int) *Checker {
	return &Checker{Timeout: timeout, MaxBytes: maxBytes, slot: make(chan struct{}, 1)}
}

// Check loads data as the pods would serve it with features: nil when it serves, an
// *Unloadable when it cannot, an error wrapping ErrNotChecked when no verdict came in time (the
// slot busy, the deadline or ctx passed, or a file larger than MaxBytes).
func (c *Checker) Check(ctx context.Context, data []byte, features []string) error {
	if len(data) > c.MaxBytes {
		return fmt.Errorf("%w: %d bytes, more than the %d the operator checks", ErrNotChecked, len(data), c.MaxBytes)
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	select {
	case c.slot <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: another check still runs after %s", ErrNotChecked, c.Timeout)
	}
	verdict := make(chan error, 1)
	go func() {
		defer func() { <-c.slot }()
		_, err := Load(data, features)
		verdict <- err
	}()
	select {
	case err := <-verdict:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: compiling took longer than %s", ErrNotChecked, c.Timeout)
	}
}
