package transform

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/overloads"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// cel-go's timestamp getters with a time zone (getMonth('Asia/Shanghai')) call time.LoadLocation
// on every call, which reads and parses the zone's file each time: two thirds of the sample
// transforms' CPU. These bindings replace them (same overloads, same results) with a cache of
// loaded zones. Only names that load are cached, so the cache is bounded by the zone database.
var zones sync.Map // name → *time.Location

func zone(name string) (*time.Location, error) {
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location), nil
	}
	if i := strings.IndexByte(name, ':'); i >= 0 {
		return fixedZone(name, i)
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	zones.Store(name, l)
	return l, nil
}

// fixedZone reads an offset from UTC, "+05:30" or "-08:00", as CEL specifies.
func fixedZone(name string, colon int) (*time.Location, error) {
	hours, err1 := strconv.Atoi(name[:colon])
	minutes, err2 := strconv.Atoi(name[colon+1:])
	if err1 != nil || err2 != nil || minutes < 0 || minutes > 59 || hours < -14 || hours > 14 {
		return nil, fmt.Errorf("time zone %q is neither a zone name nor an offset like +05:30", name)
	}
	offset := hours*60 + minutes
	if strings.HasPrefix(name, "-") {
		offset = hours*60 - minutes
	}
	return time.FixedZone("", offset*60), nil
}

// zonedGetters are the timestamp getters that take a time zone, with cached zones.
func zonedGetters() []cel.EnvOption {
	getter := func(function, overload string, get func(time.Time) int) cel.EnvOption {
		return cel.Function(function, cel.MemberOverload(overload, []*cel.Type{cel.TimestampType, cel.StringType}, cel.IntType,
			cel.BinaryBinding(func(ts, tz ref.Val) ref.Val {
				t, ok1 := ts.(types.Timestamp)
				name, ok2 := tz.(types.String)
				if !ok1 || !ok2 {
					return types.NoSuchOverloadErr()
				}
				l, err := zone(string(name))
				if err != nil {
					return types.WrapErr(err)
				}
				return types.Int(get(t.In(l)))
			})))
	}
	return []cel.EnvOption{
		getter("getFullYear", overloads.TimestampToYearWithTz, func(t time.Time) int { return t.Year() }),
		getter("getMonth", overloads.TimestampToMonthWithTz, func(t time.Time) int { return int(t.Month()) - 1 }),
		getter("getDayOfYear", overloads.TimestampToDayOfYearWithTz, func(t time.Time) int { return t.YearDay() - 1 }),
		getter("getDayOfMonth", overloads.TimestampToDayOfMonthZeroBasedWithTz, func(t time.Time) int { return t.Day() - 1 }),
		getter("getDate", overloads.TimestampToDayOfMonthOneBasedWithTz, func(t time.Time) int { return t.Day() }),
		getter("getDayOfWeek", overloads.TimestampToDayOfWeekWithTz, func(t time.Time) int { return int(t.Weekday()) }),
		getter("getHours", overloads.TimestampToHoursWithTz, func(t time.Time) int { return t.Hour() }),
		getter("getMinutes", overloads.TimestampToMinutesWithTz, func(t time.Time) int { return t.Minute() }),
		getter("getSeconds", overloads.TimestampToSecondsWithTz, func(t time.Time) int { return t.Second() }),
		getter("getMilliseconds", overloads.TimestampToMillisecondsWithTz, func(t time.Time) int { return t.Nanosecond() / 1e6 }),
	}
}
