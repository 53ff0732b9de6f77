package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// actionResult is what -o json|yaml prints for a command whose API response is empty
// (token revoke, node delete): what was done to what, and the sentence the table output
// prints.
type actionResult struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Action  string `json:"action"`
	Message string `json:"message"`
}

// printAction prints an action's result: its message, or the result as json or yaml.
func (o *options) printAction(r actionResult) error {
	if done, err := o.printValue(r); done {
		return err
	}
	_, err := fmt.Fprintln(o.out, r.Message)
	return err
}

// textBytes finds m's bytes fields that hold text (a cluster document, a PEM certificate)
// and returns, for each, its JSON string as protojson writes it (base64) and the same
// content as a JSON string of the text, so -o json|yaml shows the document a person wrote
// instead of base64.
func textBytes(m protoreflect.Message) map[string][]byte {
	out := map[string][]byte{}
	var walk func(m protoreflect.Message)
	value := func(fd protoreflect.FieldDescriptor, v protoreflect.Value) {
		switch {
		case fd.Kind() == protoreflect.BytesKind:
			b := v.Bytes()
			if !isText(b) {
				return
			}
			from, err1 := json.Marshal(base64.StdEncoding.EncodeToString(b))
			to, err2 := json.Marshal(string(b))
			if err1 == nil && err2 == nil {
				out[string(from)] = to
			}
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			walk(v.Message())
		}
	}
	walk = func(m protoreflect.Message) {
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsList():
				l := v.List()
				for i := 0; i < l.Len(); i++ {
					value(fd, l.Get(i))
				}
			case fd.IsMap():
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					value(fd.MapValue(), mv)
					return true
				})
			default:
				value(fd, v)
			}
			return true
		})
	}
	walk(m)
	return out
}

// isText: valid UTF-8 with no control characters but tabs and line ends, at least a few
// bytes (so a short binary value never reads as text by chance).
func isText(b []byte) bool {
	if len(b) < 4 || !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if unicode.IsControl(r) && r != '\n' && r != '\t' && r != '\r' {
			return false
		}
	}
	return true
}

// withTextBytes replaces, in compact protojson output, each text bytes field's base64
// string by the text itself.
func withTextBytes(js []byte, m protoreflect.Message) []byte {
	for from, to := range textBytes(m) {
		js = bytes.ReplaceAll(js, []byte(from), to)
	}
	return js
}
