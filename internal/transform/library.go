package transform

import (
	"fmt"
	"math"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"

	// getMonth('Europe/Rotterdam') and the like need the zone database, which the distroless
	// image does not have.
	_ "time/tzdata"
)

// The functions freight features need beyond standard CEL, with its optional values (`?.`,
// orValue) for defaults and cel-go's math and strings extensions:
//
//	math.pi                                    π
//	math.sin, cos, tan, asin, acos, atan(double) -> double
//	math.atan2(y, x double) -> double
//	geo.distanceKm(lat1, lon1, lat2, lon2 double) -> double   great-circle (haversine) distance
//	lookup(table, key string, default double) -> double     the table's value for key, or default
const (
	lookupFunc   = "lookup"
	distanceFunc = "geo.distanceKm"
)

// earthRadiusKm is the mean radius the haversine distance uses.
const earthRadiusKm = 6371.0088

func newEnv(tables map[string]map[string]float64) (*cel.Env, error) {
	unary := func(name string, fn func(float64) float64) cel.EnvOption {
		return cel.Function(name, cel.Overload(overloadID(name), []*cel.Type{cel.DoubleType}, cel.DoubleType,
			cel.UnaryBinding(func(v ref.Val) ref.Val {
				d, ok := v.(types.Double)
				if !ok {
					return types.NoSuchOverloadErr()
				}
				return types.Double(fn(float64(d)))
			})))
	}
	return cel.NewEnv(append(zonedGetters(),
		cel.Variable("event", cel.DynType),
		cel.OptionalTypes(),
		ext.Math(),
		ext.Strings(),
		cel.Constant("math.pi", cel.DoubleType, types.Double(math.Pi)),
		unary("math.sin", math.Sin),
		unary("math.cos", math.Cos),
		unary("math.tan", math.Tan),
		unary("math.asin", math.Asin),
		unary("math.acos", math.Acos),
		unary("math.atan", math.Atan),
		cel.Function("math.atan2", cel.Overload("math_atan2_double_double", []*cel.Type{cel.DoubleType, cel.DoubleType}, cel.DoubleType,
			cel.BinaryBinding(func(y, x ref.Val) ref.Val {
				yd, ok1 := y.(types.Double)
				xd, ok2 := x.(types.Double)
				if !ok1 || !ok2 {
					return types.NoSuchOverloadErr()
				}
				return types.Double(math.Atan2(float64(yd), float64(xd)))
			}))),
		cel.Function(distanceFunc, cel.Overload("geo_distance_km_double4", []*cel.Type{cel.DoubleType, cel.DoubleType, cel.DoubleType, cel.DoubleType}, cel.DoubleType,
			cel.FunctionBinding(func(args ...ref.Val) ref.Val {
				var c [4]float64
				for i, a := range args {
					d, ok := a.(types.Double)
					if !ok {
						return types.NoSuchOverloadErr()
					}
					c[i] = float64(d)
				}
				km, err := haversineKm(c[0], c[1], c[2], c[3])
				if err != nil {
					return types.WrapErr(err)
				}
				return types.Double(km)
			}))),
		cel.Function(lookupFunc, cel.Overload("lookup_string_string_double", []*cel.Type{cel.StringType, cel.StringType, cel.DoubleType}, cel.DoubleType,
			cel.FunctionBinding(func(args ...ref.Val) ref.Val {
				table, ok1 := args[0].(types.String)
				key, ok2 := args[1].(types.String)
				def, ok3 := args[2].(types.Double)
				if !ok1 || !ok2 || !ok3 {
					return types.NoSuchOverloadErr()
				}
				t, ok := tables[string(table)]
				if !ok {
					return types.NewErr("no table %q", string(table))
				}
				if v, ok := t[string(key)]; ok {
					return types.Double(v)
				}
				return def
			}))),
	)...)
}

func overloadID(name string) string {
	id := []byte(name)
	for i, c := range id {
		if c == '.' {
			id[i] = '_'
		}
	}
	return string(id) + "_double"
}

// haversineKm is the great-circle distance between two points given in degrees.
func haversineKm(lat1, lon1, lat2, lon2 float64) (float64, error) {
	for _, lat := range []float64{lat1, lat2} {
		if !(lat >= -90 && lat <= 90) {
			return 0, fmt.Errorf("%s: latitude %v is not between -90 and 90", distanceFunc, lat)
		}
	}
	for _, lon := range []float64{lon1, lon2} {
		if !(lon >= -180 && lon <= 180) {
			return 0, fmt.Errorf("%s: longitude %v is not between -180 and 180", distanceFunc, lon)
		}
	}
	rad := math.Pi / 180
	dLat, dLon := (lat2-lat1)*rad, (lon2-lon1)*rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadiusKm * math.Asin(math.Min(1, math.Sqrt(h))), nil
}
