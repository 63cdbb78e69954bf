package model

import (
	"fmt"
	"math"
	"slices"
)

// The ai.onnx.ml preprocessing operators scikit-learn pipelines convert to: Scaler, Normalizer,
// Binarizer, Imputer, OneHotEncoder, ArrayFeatureExtractor (ColumnTransformer's column
// selection) and FeatureVectorizer. All are opset 1 and unchanged since.

func init() {
	for name, c := range map[string]func(*nodeCtx) (kernel, error){
		"Scaler": compileScaler, "Normalizer": compileNormalizer, "Binarizer": compileBinarizer,
		"Imputer": compileImputer, "OneHotEncoder": compileOneHotEncoder,
		"ArrayFeatureExtractor": compileArrayFeatureExtractor, "FeatureVectorizer": compileFeatureVectorizer,
	} {
		register(opImpl{domain: domainML, name: name, minOpset: 1, maxOpset: maxOpsetML, compile: c})
	}
}

// numericML are the input types of the numeric ml operators.
var numericML = []DType{Float32, Float64, Int64, Int32}

// asFloat64 is X's values widened to float64 (in the step's scratch tensor i).
func asFloat64(x *exec, X *Tensor, i int) ([]float64, error) {
	if X.DType == Float64 {
		return data[float64](X), nil
	}
	t := x.scratch(i)
	if err := castInto(t, X, Float64); err != nil {
		return nil, err
	}
	return t.Float64, nil
}

// perColumn reads a FLOATS attribute applied per column: one value for every column, or one
// per column; def fills in when it is absent.
func perColumn(n *nodeCtx, name string, def float64, cols int) ([]float64, error) {
	v, ok, err := n.attrFloats(name)
	if err != nil {
		return nil, err
	}
	if !ok || len(v) == 0 {
		return []float64{def}, nil
	}
	if len(v) != 1 && cols >= 0 && len(v) != cols {
		return nil, fmt.Errorf("has %d values of %s for %d columns", len(v), name, cols)
	}
	out := make([]float64, len(v))
	for i, f := range v {
		out[i] = float64(f)
	}
	return out, nil
}

// columnValue is vals[j], or the one value for every column.
func columnValue(vals []float64, j int) float64 {
	if len(vals) == 1 {
		return vals[0]
	}
	return vals[j]
}

// checkColumns checks that an attribute of n per-column values fits the input's last axis.
func checkColumns(what string, n, cols int) error {
	if n != 1 && n != cols {
		return fmt.Errorf("%d values of %s for %d columns", n, what, cols)
	}
	return nil
}

func lastDim(shape []int) int {
	if len(shape) == 0 {
		return 1
	}
	return shape[len(shape)-1]
}

// Scaler: Y = (X − offset) · scale per column, as float.
func compileScaler(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, numericML...); err != nil {
		return nil, err
	}
	if err := checkAttrNames(n, "Scaler", n.opset, []string{"offset", "scale"}, nil); err != nil {
		return nil, err
	}
	cols := lastDim(n.shape(0))
	offset, err := perColumn(n, "offset", 0, cols)
	if err != nil {
		return nil, err
	}
	scale, err := perColumn(n, "scale", 1, cols)
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, Float32, slices.Clone(n.shape(0)))
	return mlRowKernel(func(x *exec, in, out []*Tensor) error {
		X := in[0]
		cols := lastDim(X.Shape)
		if err := checkColumns("offset", len(offset), cols); err != nil {
			return err
		}
		if err := checkColumns("scale", len(scale), cols); err != nil {
			return err
		}
		v, err := asFloat64(x, X, 0)
		if err != nil {
			return err
		}
		if err := out[0].reset(Float32, X.Shape...); err != nil {
			return err
		}
		for i, f := range v {
			j := i % cols
			out[0].Float32[i] = float32((f - columnValue(offset, j)) * columnValue(scale, j))
		}
		return nil
	}), nil
}

// Normalizer divides each row by its largest absolute value (MAX, as scikit-learn's
// Normalizer(norm="max") does; onnxruntime divides by the largest signed value), the sum of
// absolute values (L1) or the Euclidean norm (L2). A zero row stays zero.
func compileNormalizer(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, numericML...); err != nil {
		return nil, err
	}
	if err := checkAttrNames(n, "Normalizer", n.opset, []string{"norm"}, nil); err != nil {
		return nil, err
	}
	if r := len(n.shape(0)); r != 1 && r != 2 {
		return nil, unsupported("Normalizer input has rank %d; it takes [N, C] or [C]", r)
	}
	norm, err := n.attrString("norm", "MAX")
	if err != nil {
		return nil, err
	}
	if norm != "MAX" && norm != "L1" && norm != "L2" {
		return nil, unsupported("norm %q is not one of MAX, L1, L2", norm)
	}
	n.setOutTensor(0, Float32, slices.Clone(n.shape(0)))
	return mlRowKernel(func(x *exec, in, out []*Tensor) error {
		X := in[0]
		cols := lastDim(X.Shape)
		v, err := asFloat64(x, X, 0)
		if err != nil {
			return err
		}
		if err := out[0].reset(Float32, X.Shape...); err != nil {
			return err
		}
		for r := 0; r < len(v); r += cols {
			row := v[r : r+cols]
			d := 0.0
			for _, f := range row {
				switch norm {
				case "MAX":
					d = max(d, math.Abs(f))
				case "L1":
					d += math.Abs(f)
				default:
					d += f * f
				}
			}
			if norm == "L2" {
				d = math.Sqrt(d)
			}
			if d == 0 {
				d = 1
			}
			for j, f := range row {
				out[0].Float32[r+j] = float32(f / d)
			}
		}
		return nil
	}), nil
}

// Binarizer: 1 where X > threshold, else 0, in X's type.
func compileBinarizer(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, numericML...); err != nil {
		return nil, err
	}
	if err := checkAttrNames(n, "Binarizer", n.opset, []string{"threshold"}, nil); err != nil {
		return nil, err
	}
	th, err := n.attrFloat("threshold", 0)
	if err != nil {
		return nil, err
	}
	t := float64(th)
	n.setOutTensor(0, n.dtype(0), slices.Clone(n.shape(0)))
	return mlRowKernel(func(x *exec, in, out []*Tensor) error {
		X := in[0]
		v, err := asFloat64(x, X, 0)
		if err != nil {
			return err
		}
		ones := x.scratch(1)
		if err := ones.reset(Float64, len(v)); err != nil {
			return err
		}
		for i, f := range v {
			ones.Float64[i] = 0
			if f > t {
				ones.Float64[i] = 1
			}
		}
		ones.Shape = append(ones.Shape[:0], X.Shape...)
		return castInto(out[0], ones, X.DType)
	}), nil
}

// Imputer replaces the values equal to replaced_value_float (NaN matches NaN) or
// replaced_value_int64 with the column's imputed value.
func compileImputer(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, numericML...); err != nil {
		return nil, err
	}
	if err := checkAttrNames(n, "Imputer", n.opset, []string{"imputed_value_floats", "imputed_value_int64s",
		"replaced_value_float", "replaced_value_int64"}, nil); err != nil {
		return nil, err
	}
	if r := len(n.shape(0)); r != 1 && r != 2 {
		return nil, unsupported("Imputer input has rank %d; it takes [N, C] or [C]", r)
	}
	dt := n.dtype(0)
	var imputed []float64
	var replaced float64
	if dt.isFloat() {
		f, ok, err := n.attrFloats("imputed_value_floats")
		if err != nil {
			return nil, err
		}
		if !ok || len(f) == 0 {
			return nil, fmt.Errorf("a %s input needs imputed_value_floats", dt)
		}
		for _, v := range f {
			imputed = append(imputed, float64(v))
		}
		r, err := n.attrFloat("replaced_value_float", 0)
		if err != nil {
			return nil, err
		}
		replaced = float64(r)
	} else {
		iv, ok, err := n.attrInts("imputed_value_int64s")
		if err != nil {
			return nil, err
		}
		if !ok || len(iv) == 0 {
			return nil, fmt.Errorf("a %s input needs imputed_value_int64s", dt)
		}
		for _, v := range iv {
			imputed = append(imputed, float64(v))
		}
		r, err := n.attrInt("replaced_value_int64", 0)
		if err != nil {
			return nil, err
		}
		replaced = float64(r)
	}
	if cols := lastDim(n.shape(0)); cols >= 0 {
		if err := checkColumns("imputed values", len(imputed), cols); err != nil {
			return nil, err
		}
	}
	n.setOutTensor(0, dt, slices.Clone(n.shape(0)))
	nan := math.IsNaN(replaced)
	return mlRowKernel(func(x *exec, in, out []*Tensor) error {
		X := in[0]
		cols := lastDim(X.Shape)
		if err := checkColumns("imputed values", len(imputed), cols); err != nil {
			return err
		}
		if err := out[0].copyFrom(X); err != nil {
			return err
		}
		switch X.DType {
		case Float32:
			impute(out[0].Float32, cols, imputed, replaced, nan)
		case Float64:
			impute(out[0].Float64, cols, imputed, replaced, nan)
		case Int64:
			impute(out[0].Int64, cols, imputed, replaced, false)
		case Int32:
			impute(out[0].Int32, cols, imputed, replaced, false)
		}
		return nil
	}), nil
}

func impute[T float32 | float64 | int64 | int32](v []T, cols int, imputed []float64, replaced float64, nan bool) {
	for i, x := range v {
		if nan && x != x || !nan && float64(x) == replaced {
			v[i] = T(columnValue(imputed, i%cols))
		}
	}
}

// OneHotEncoder appends an axis of one float per category: 1 where the value is that category.
// A value in no category is all zeros, or an error when zeros is 0. Numbers are matched as
// integers (truncated, as onnxruntime does).
func compileOneHotEncoder(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, String, Int64, Int32, Float32, Float64); err != nil {
		return nil, err
	}
	if err := checkAttrNames(n, "OneHotEncoder", n.opset, []string{"cats_int64s", "cats_strings", "zeros"}, nil); err != nil {
		return nil, err
	}
	cats, err := readClassLabels(n, "cats_int64s", "cats_strings")
	if err != nil {
		return nil, fmt.Errorf("categories: %w", err)
	}
	if (cats.strings != nil) != (n.dtype(0) == String) {
		return nil, fmt.Errorf("a %s input cannot match %s categories", n.dtype(0), cats.dtype())
	}
	zeros, err := n.attrInt("zeros", 1)
	if err != nil {
		return nil, err
	}
	// A repeated category counts at its last position, as in ONNX's reference evaluator.
	byString := make(map[string]int, len(cats.strings))
	for i, s := range cats.strings {
		byString[s] = i
	}
	byInt := make(map[int64]int, len(cats.ints))
	for i, v := range cats.ints {
		byInt[v] = i
	}
	c := cats.len()
	n.setOutTensor(0, Float32, append(slices.Clone(n.shape(0)), c))
	return mlRowKernel(func(x *exec, in, out []*Tensor) error {
		X := in[0]
		shape := append(append(x.shapeBuf()[:0], X.Shape...), c)
		if err := out[0].reset(Float32, shape...); err != nil {
			return err
		}
		clear(out[0].Float32)
		var v []float64
		if X.DType != String {
			var err error
			if v, err = asFloat64(x, X, 0); err != nil {
				return err
			}
		}
		for i := range X.Len() {
			j, ok := 0, false
			if X.DType == String {
				j, ok = byString[X.String[i]]
			} else if f := v[i]; !math.IsNaN(f) && math.Abs(f) < 1<<63 {
				j, ok = byInt[int64(f)]
			}
			switch {
			case ok:
				out[0].Float32[i*c+j] = 1
			case zeros == 0:
				return fmt.Errorf("value %d is in no category, and the encoder's zeros is 0", i)
			}
		}
		return nil
	}), nil
}

// ArrayFeatureExtractor selects elements of X's last axis by index: shape X.shape[:-1] + [k]
// for k indices ([1, k] for a 1-D X, as onnxruntime does).
func compileArrayFeatureExtractor(n *nodeCtx) (kernel, error) {
	if err := n.arity(2, 2, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32, Float64, Int64, Int32, String); err != nil {
		return nil, err
	}
	if err := n.needTypes(1, Int64); err != nil {
		return nil, err
	}
	if err := checkAttrNames(n, "ArrayFeatureExtractor", n.opset, nil, nil); err != nil {
		return nil, err
	}
	xs := n.shape(0)
	if len(xs) == 0 {
		return nil, fmt.Errorf("input X is a scalar; ArrayFeatureExtractor takes a tensor of rank 1 or more")
	}
	k := n.sym()
	if idx, ok := n.ints(1); ok {
		k = len(idx)
		if last := xs[len(xs)-1]; last >= 0 {
			for _, i := range idx {
				if i < 0 || i >= int64(last) {
					return nil, fmt.Errorf("index %d is out of range for %d columns", i, last)
				}
			}
		}
	} else if ys := n.shape(1); static(ys) {
		k = product(ys)
	}
	shape := []int{1, k}
	if len(xs) > 1 {
		shape = append(slices.Clone(xs[:len(xs)-1]), k)
	}
	n.setOutTensor(0, n.dtype(0), shape)
	return mlRowKernel(func(x *exec, in, out []*Tensor) error {
		X, idx := in[0], data[int64](in[1])
		last := X.Shape[len(X.Shape)-1]
		for _, i := range idx {
			if i < 0 || i >= int64(last) {
				return fmt.Errorf("ArrayFeatureExtractor index %d is out of range for %d columns", i, last)
			}
		}
		shape := append(x.shapeBuf()[:0], 1, len(idx))
		if len(X.Shape) > 1 {
			shape = append(append(shape[:0], X.Shape[:len(X.Shape)-1]...), len(idx))
		}
		if err := out[0].reset(X.DType, shape...); err != nil {
			return err
		}
		rows := X.Len() / max(last, 1)
		for r := range rows {
			for j, i := range idx {
				copyElems(out[0], r*len(idx)+j, X, r*last+int(i), 1)
			}
		}
		return nil
	}), nil
}

// FeatureVectorizer concatenates its inputs' columns, each cut or zero-padded to its
// inputdimensions entry, as float.
func compileFeatureVectorizer(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, math.MaxInt, 1, 1); err != nil {
		return nil, err
	}
	if err := checkAttrNames(n, "FeatureVectorizer", n.opset, []string{"inputdimensions"}, nil); err != nil {
		return nil, err
	}
	dims, _, err := n.attrInts("inputdimensions")
	if err != nil {
		return nil, err
	}
	if len(dims) != n.numIn() {
		return nil, fmt.Errorf("has %d inputdimensions for %d inputs", len(dims), n.numIn())
	}
	// The inputs are variadic of one type constraint, so they share their type.
	if err := n.sameType(seq(n.numIn())...); err != nil {
		return nil, err
	}
	total := 0
	for i, d := range dims {
		if err := n.needTypes(i, Float32, Float64, Int64, Int32); err != nil {
			return nil, err
		}
		if r := len(n.shape(i)); r != 1 && r != 2 {
			return nil, unsupported("input %d has rank %d; FeatureVectorizer takes [N, C] or [N]", i, r)
		}
		if d < 0 || d > 1<<24 {
			return nil, fmt.Errorf("inputdimensions[%d] is %d", i, d)
		}
		total += int(d)
	}
	n.setOutTensor(0, Float32, []int{n.shape(0)[0], total})
	return mlRowKernel(func(x *exec, in, out []*Tensor) error {
		rows := in[0].Shape[0]
		if err := out[0].reset(Float32, rows, total); err != nil {
			return err
		}
		clear(out[0].Float32)
		at := 0
		for i, X := range in {
			if X.Shape[0] != rows {
				return fmt.Errorf("FeatureVectorizer input %d has %d rows, input 0 %d", i, X.Shape[0], rows)
			}
			v, err := asFloat64(x, X, 0)
			if err != nil {
				return err
			}
			cols, d := X.Len()/max(rows, 1), int(dims[i])
			for r := range rows {
				for j := range min(cols, d) {
					out[0].Float32[r*total+at+j] = float32(v[r*cols+j])
				}
			}
			at += d
		}
		return nil
	}), nil
}
