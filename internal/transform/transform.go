// Package transform compiles and evaluates a pipeline's feature transforms: CEL expressions
// (github.com/google/cel-go, the version the Kubernetes API server uses) that compute a model
// feature from the raw event a client sent. The operator compiles them to refuse a bad spec (the
// webhook, and the pipeline's FeaturesValid condition without it); ingestion and local mode
// compile the same expressions once and evaluate them for every event. It knows nothing of
// Kubernetes.
//
// An expression sees the event as `event`: {"id": ..., "shipment": {...}}, JSON as CEL reads it
// (objects are maps, every number a double, as in google.protobuf.Struct). Before it runs, an
// expression is parsed, type-checked (its result must fit the model input the feature feeds)
// and its worst-case cost estimated against MaxCost, with every string, list and map of the
// event bounded by the largest shipment ingestion accepts. At run time the same limit stops an
// evaluation that would exceed it.
package transform

import (
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
)

// MaxCost bounds an expression's cost, in cel-go's cost units (about one per operation, one per
// ten characters a string function reads): estimated before it is accepted, enforced while it
// runs. A freight feature is arithmetic on a few fields and costs tens; the bound leaves room for
// a comprehension over a shipment's lists.
const MaxCost = 100_000

// trackedCost is the estimate above which an expression's cost is also tracked while it runs.
// Below it the estimate, an upper bound computed with the event's sizes bounded, already
// guarantees the limit, and tracking would cost a fifth of the evaluation: this spares the
// arithmetic that features mostly are, and keeps the runtime limit for loops.
const trackedCost = 1000

// MaxExpressionLength bounds an expression's source, in bytes (the API field's bound too).
const MaxExpressionLength = 4096

// Feature is one compiled transform.
type Feature struct {
	// Name is the model feature it computes, Expression its source.
	Name, Expression string
	// datatype is the OIP datatype of the model input the feature feeds ("" when unknown: any
	// scalar is accepted at compile time).
	datatype string
	prg      cel.Program
}

// Set is a pipeline's compiled transforms. It is immutable and safe for concurrent use; each
// goroutine evaluates with its own Event.
type Set struct {
	features []*Feature
	byName   map[string]*Feature
}

// Error is what is wrong with one transform, naming the feature and the expression.
type Error struct {
	Feature, Expression string
	Err                 error
}

func (e *Error) Error() string {
	return fmt.Sprintf("feature %q: expression %q: %v", e.Feature, e.Expression, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Compile checks and compiles t. datatype names the OIP datatype of the model input each feature
// feeds; nil (or "" for a feature) means it is not known yet, and any number, bool or string
// result passes. Every problem is reported, each an *Error or a table's error.
func Compile(t pipelineconfig.Transforms, datatype func(feature string) string) (_ *Set, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("compiling the feature transforms: internal error in the expression compiler: %v\n%s", r, debug.Stack())
		}
	}()
	tables, errs := compileTables(t.Tables)
	env, err := newEnv(tables)
	if err != nil {
		return nil, fmt.Errorf("feature transforms: %w", err)
	}
	s := &Set{byName: map[string]*Feature{}}
	for i, f := range t.Features {
		dt := ""
		if datatype != nil {
			dt = datatype(f.Name)
		}
		switch {
		case f.Name == "":
			errs = append(errs, fmt.Errorf("features[%d]: name is empty", i))
			continue
		case s.byName[f.Name] != nil:
			errs = append(errs, fmt.Errorf("features[%d]: feature %q has two transforms", i, f.Name))
			continue
		}
		prg, err := compile(env, tables, f.Expression, dt)
		if err != nil {
			errs = append(errs, &Error{Feature: f.Name, Expression: f.Expression, Err: err})
			continue
		}
		c := &Feature{Name: f.Name, Expression: f.Expression, datatype: dt, prg: prg}
		s.features = append(s.features, c)
		s.byName[f.Name] = c
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// Features are the compiled transforms, in spec order.
func (s *Set) Features() []*Feature {
	if s == nil {
		return nil
	}
	return s.features
}

// Get is the transform of feature name, nil when it has none.
func (s *Set) Get(name string) *Feature {
	if s == nil {
		return nil
	}
	return s.byName[name]
}

func compile(env *cel.Env, tables map[string]map[string]float64, expr, datatype string) (cel.Program, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, errors.New("is empty")
	}
	if len(expr) > MaxExpressionLength {
		return nil, fmt.Errorf("is %d bytes, the limit is %d", len(expr), MaxExpressionLength)
	}
	checked, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, errors.New(strings.TrimSpace(iss.Err().Error()))
	}
	if err := checkResult(checked.OutputType(), datatype); err != nil {
		return nil, err
	}
	if err := checkTables(checked, tables); err != nil {
		return nil, err
	}
	est, err := env.EstimateCost(checked, eventSizes{})
	if err != nil {
		return nil, fmt.Errorf("estimating its cost: %w", err)
	}
	if est.Max > MaxCost {
		return nil, fmt.Errorf("may cost up to %d, more than the limit of %d (a comprehension over a list of the event costs per element; bound it or drop it)", est.Max, MaxCost)
	}
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if est.Max > trackedCost {
		opts = append(opts, cel.CostLimit(MaxCost))
	}
	prg, err := env.Program(checked, opts...)
	if err != nil {
		return nil, err
	}
	return prg, nil
}

// checkResult refuses a result type the model input cannot take.
func checkResult(t *cel.Type, datatype string) error {
	if t.Kind() == types.DynKind {
		return nil // a field of the event: its value is checked when it is computed
	}
	var want []*cel.Type
	var words string
	switch datatype {
	case "", "FP32", "FP64":
		want, words = []*cel.Type{cel.DoubleType, cel.IntType, cel.UintType}, "a number (double or int)"
		if datatype == "" {
			want, words = append(want, cel.BoolType, cel.StringType), "a number, a bool or a string"
		}
	case "INT64", "INT32":
		want, words = []*cel.Type{cel.IntType, cel.UintType}, "an int, the type of the model input ("+datatype+")"
	case "BOOL":
		want, words = []*cel.Type{cel.BoolType}, "a bool, the type of the model input (BOOL)"
	case "BYTES":
		want, words = []*cel.Type{cel.StringType}, "a string, the type of the model input (BYTES)"
	default:
		return fmt.Errorf("feeds a model input of type %s, which features cannot feed", datatype)
	}
	for _, w := range want {
		if t.IsExactType(w) {
			return nil
		}
	}
	return fmt.Errorf("results in %s, but the feature must be %s", t, words)
}

// checkTables refuses a lookup in a table the spec does not declare, or whose name is not a
// literal (which could not be checked before the expression runs).
func checkTables(a *cel.Ast, tables map[string]map[string]float64) error {
	calls := ast.MatchDescendants(ast.NavigateAST(a.NativeRep()), ast.FunctionMatcher(lookupFunc))
	for _, c := range calls {
		args := c.AsCall().Args()
		if len(args) == 0 || args[0].Kind() != ast.LiteralKind {
			return fmt.Errorf("%s: the table name must be a string literal", lookupFunc)
		}
		name, ok := args[0].AsLiteral().Value().(string)
		if !ok {
			return fmt.Errorf("%s: the table name must be a string literal", lookupFunc)
		}
		if _, ok := tables[name]; !ok {
			return fmt.Errorf("%s: no table %q in the pipeline's tables", lookupFunc, name)
		}
	}
	return nil
}

// compileTables parses the tables' values, which the API gives as strings.
func compileTables(in []pipelineconfig.LookupTable) (map[string]map[string]float64, []error) {
	out := make(map[string]map[string]float64, len(in))
	var errs []error
	for i, t := range in {
		if t.Name == "" {
			errs = append(errs, fmt.Errorf("tables[%d]: name is empty", i))
			continue
		}
		if _, dup := out[t.Name]; dup {
			errs = append(errs, fmt.Errorf("tables[%d]: table %q is declared twice", i, t.Name))
			continue
		}
		values := make(map[string]float64, len(t.Values))
		for k, v := range t.Values {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				errs = append(errs, fmt.Errorf("table %q: the value of %q is %q, not a finite number", t.Name, k, v))
				continue
			}
			values[k] = f
		}
		out[t.Name] = values
	}
	return out, errs
}

// eventSizes bounds, for the cost estimate, every string, list and map an expression reads from
// the event by the largest shipment ingestion accepts: none can hold more elements than bytes.
type eventSizes struct{}

func (eventSizes) EstimateSize(checker.AstNode) *checker.SizeEstimate {
	return &checker.SizeEstimate{Min: 0, Max: event.MaxShipmentBytes}
}

func (eventSizes) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// Eval computes the feature for the event ev is bound to: a number for an FP32 or FP64 input (or
// one of unknown type that results in a number), an integer for INT64 and INT32, a bool for BOOL,
// a string for BYTES. The error says why the event has no such feature (a missing field, a
// value of the wrong type, a non-finite number, the cost limit); it never panics.
func (f *Feature) Eval(ev *Event) (v event.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = event.Value{}, fmt.Errorf("internal error in the expression evaluator: %v", r)
		}
	}()
	out, _, err := f.prg.Eval(&ev.act)
	if err != nil {
		return event.Value{}, err
	}
	return convert(out, f.datatype)
}

// convert turns a result into the feature value the input takes.
func convert(out ref.Val, datatype string) (event.Value, error) {
	switch v := out.(type) {
	case types.Double:
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return event.Value{}, fmt.Errorf("results in %v; a feature must be a finite number", f)
		}
		switch datatype {
		case "", "FP32", "FP64":
			return event.NumberValue(f), nil
		case "INT64", "INT32":
			if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
				return event.IntValue(int64(f)), nil
			}
			return event.Value{}, fmt.Errorf("results in %v, not an integer, which the model input (%s) takes", f, datatype)
		}
	case types.Int:
		switch datatype {
		case "", "FP32", "FP64":
			return event.NumberValue(float64(v)), nil
		case "INT64", "INT32":
			return event.IntValue(int64(v)), nil
		}
	case types.Uint:
		switch datatype {
		case "", "FP32", "FP64":
			return event.NumberValue(float64(v)), nil
		case "INT64", "INT32":
			if v <= math.MaxInt64 {
				return event.IntValue(int64(v)), nil
			}
		}
	case types.Bool:
		if datatype == "BOOL" || datatype == "" {
			return event.BoolValue(bool(v)), nil
		}
	case types.String:
		if datatype == "BYTES" || datatype == "" {
			return event.StringValue(string(v)), nil
		}
	}
	want := "a number"
	switch datatype {
	case "INT64", "INT32":
		want = "an integer"
	case "BOOL":
		want = "a bool"
	case "BYTES":
		want = "a string"
	}
	return event.Value{}, fmt.Errorf("results in %s %s; the feature must be %s", out.Type().(ref.Type).TypeName(), shortValue(out), want)
}

// shortValue prints a result for an error without letting it run long.
func shortValue(v ref.Val) string {
	s := fmt.Sprint(v.Value())
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return s
}
