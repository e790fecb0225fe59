package wfm

import (
	"encoding"
	"encoding/json"
	"math/big"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// JSON numbers travel as doubles (google.protobuf.Struct): an integer beyond ±2^53 would
// arrive changed, silently (int64(9007199254740993) arrives as 9007199254740992). Such
// integers are refused before sending, naming where they are, as the wfm CLI and the
// TypeScript client do. Floats are not checked: a float64 is a double already.

// maxExact is the largest integer a double holds exactly, with every one below it.
const maxExact = 1 << 53

var jsonNumberType = reflect.TypeFor[json.Number]()

// checkExactNumbers returns an InvalidArgument error for the first integer of v (walked as
// encoding/json would write it) that a double cannot hold: `field.a.b[2]: N is beyond ±2^53 ...`.
// v has been through json.Marshal already, which refuses cycles.
func checkExactNumbers(field string, v any) error {
	return walkExact(field, reflect.ValueOf(v))
}

func walkExact(path string, v reflect.Value) error {
	if !v.IsValid() {
		return nil
	}
	if v.Type() == jsonNumberType {
		return checkNumberText(path, v.String())
	}
	if writesItself(v) {
		return nil // its MarshalJSON / MarshalText decides what is sent
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n := v.Int(); n > maxExact || n < -maxExact {
			return beyondDoubles(path, big.NewInt(n).String())
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if n := v.Uint(); n > maxExact {
			return beyondDoubles(path, new(big.Int).SetUint64(n).String())
		}
	case reflect.Interface, reflect.Pointer:
		if !v.IsNil() {
			return walkExact(path, v.Elem())
		}
	case reflect.Map:
		keys := v.MapKeys()
		// Sorted, as encoding/json writes them, so that the first one reported is stable.
		names := make([]string, len(keys))
		for i, k := range keys {
			names[i] = mapKey(k)
		}
		order := make([]int, len(keys))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return strings.Compare(names[a], names[b]) })
		for _, i := range order {
			if err := walkExact(childPath(path, names[i]), v.MapIndex(keys[i])); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return nil // []byte: a base64 string
		}
		for i := range v.Len() {
			if err := walkExact(path+"["+itoa(i)+"]", v.Index(i)); err != nil {
				return err
			}
		}
	case reflect.Struct:
		return walkStruct(path, v)
	}
	return nil
}

var (
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// writesItself tells whether encoding/json would call v's MarshalJSON or MarshalText.
func writesItself(v reflect.Value) bool {
	if v.Kind() == reflect.Interface || (v.Kind() == reflect.Pointer && v.IsNil()) {
		return false
	}
	t := v.Type()
	if t.Implements(jsonMarshalerType) || t.Implements(textMarshalerType) {
		return true
	}
	pt := reflect.PointerTo(t)
	return v.CanAddr() && (pt.Implements(jsonMarshalerType) || pt.Implements(textMarshalerType))
}

// walkStruct walks the exported fields of a struct under their JSON names (embedded
// structs' fields at the same level, as encoding/json flattens them).
func walkStruct(path string, v reflect.Value) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" && opts == "" {
			continue
		}
		if f.Anonymous && name == "" {
			fv := v.Field(i)
			if fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					continue
				}
				fv = fv.Elem()
			}
			if fv.Kind() == reflect.Struct {
				if err := walkStruct(path, fv); err != nil {
					return err
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if strings.Contains(","+opts+",", ",string,") {
			continue // written as a JSON string
		}
		if err := walkExact(childPath(path, name), v.Field(i)); err != nil {
			return err
		}
	}
	return nil
}

// checkNumberText checks a json.Number, which is written as it is.
func checkNumberText(path, text string) error {
	n, ok := new(big.Int).SetString(text, 10)
	if !ok {
		return nil // not an integer literal: a float, parsed as a double
	}
	if n.CmpAbs(big.NewInt(maxExact)) > 0 {
		return beyondDoubles(path, n.String())
	}
	return nil
}

func beyondDoubles(path, number string) error {
	return invalidArgument("%s: %s is beyond ±2^53: JSON numbers travel as doubles and it would arrive changed; send it as a string", path, number)
}

var identifier = regexp.MustCompile(`^[A-Za-z_$][\w$]*$`)

// childPath is path.key, or path["key"] for a key that is not an identifier (as the TypeScript client writes it).
func childPath(path, key string) string {
	if identifier.MatchString(key) {
		return path + "." + key
	}
	b, _ := json.Marshal(key)
	return path + "[" + string(b) + "]"
}

func mapKey(k reflect.Value) string {
	if k.Kind() == reflect.String {
		return k.String()
	}
	b, err := json.Marshal(k.Interface())
	if err != nil {
		return k.String()
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		return s // a json.TextMarshaler key
	}
	return strings.Trim(string(b), `"`)
}

func itoa(i int) string { return strconv.Itoa(i) }
