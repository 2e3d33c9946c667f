package accountcli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// The CLI's JSON spells enum values as its flags take them (`service`, not
// `KEY_TYPE_SERVICE`), so that a value read from `-o json` can be given
// back to a flag. protojson has no hook for that, so its output is read
// back as an ordered tree, the enum fields found by walking the message
// descriptor beside it, and written out again in the same field order.

// node is one JSON value with its object keys kept in order.
type node struct {
	obj   []member // an object (isObj)
	arr   []*node  // an array (isArr)
	raw   json.RawMessage
	isObj bool
	isArr bool
}

type member struct {
	key string
	val *node
}

func readNode(dec *json.Decoder) (*node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n := &node{isObj: true}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, _ := k.(string)
				v, err := readNode(dec)
				if err != nil {
					return nil, err
				}
				n.obj = append(n.obj, member{key, v})
			}
			_, err := dec.Token() // '}'
			return n, err
		case '[':
			n := &node{isArr: true}
			for dec.More() {
				v, err := readNode(dec)
				if err != nil {
					return nil, err
				}
				n.arr = append(n.arr, v)
			}
			_, err := dec.Token() // ']'
			return n, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		b, err := rawJSON(t)
		return &node{raw: b}, err
	}
}

// rawJSON encodes a scalar without escaping <, > and & (protojson does not,
// and a description or scope printed back should read as it was written).
func rawJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func (n *node) write(w *bytes.Buffer) {
	switch {
	case n.isObj:
		w.WriteByte('{')
		for i, m := range n.obj {
			if i > 0 {
				w.WriteByte(',')
			}
			k, _ := rawJSON(m.key)
			w.Write(k)
			w.WriteByte(':')
			m.val.write(w)
		}
		w.WriteByte('}')
	case n.isArr:
		w.WriteByte('[')
		for i, v := range n.arr {
			if i > 0 {
				w.WriteByte(',')
			}
			v.write(w)
		}
		w.WriteByte(']')
	default:
		w.Write(n.raw)
	}
}

// cliEnums rewrites, in the JSON of a message of descriptor md, every enum
// value to its CLI spelling.
func cliEnums(b []byte, md protoreflect.MessageDescriptor) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	root, err := readNode(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after JSON value")
	}
	if root.isArr {
		for _, v := range root.arr {
			rewriteEnums(v, md)
		}
	} else {
		rewriteEnums(root, md)
	}
	var out bytes.Buffer
	root.write(&out)
	return out.Bytes(), nil
}

func rewriteEnums(n *node, md protoreflect.MessageDescriptor) {
	if !n.isObj || md == nil {
		return
	}
	for _, m := range n.obj {
		fd := md.Fields().ByName(protoreflect.Name(m.key))
		if fd == nil || fd.IsMap() {
			continue
		}
		values := []*node{m.val}
		if m.val.isArr {
			values = m.val.arr
		}
		for _, v := range values {
			switch fd.Kind() {
			case protoreflect.EnumKind:
				var name string
				if json.Unmarshal(v.raw, &name) == nil {
					v.raw, _ = rawJSON(EnumCLIName(fd.Enum(), name))
				}
			case protoreflect.MessageKind:
				if !strings.HasPrefix(string(fd.Message().FullName()), "google.protobuf.") {
					rewriteEnums(v, fd.Message())
				}
			}
		}
	}
}

// EnumCLIName is how the CLI spells an enum value: its name without the
// enum's own prefix, in lower case (KEY_TYPE_SERVICE of KeyType is
// "service", KEY_ORIGIN_CUSTOM of KeyOrigin "custom"); the unspecified
// value is "".
func EnumCLIName(ed protoreflect.EnumDescriptor, value string) string {
	prefix := upperSnake(string(ed.Name())) + "_"
	rest, ok := strings.CutPrefix(value, prefix)
	if !ok {
		return strings.ToLower(value)
	}
	if rest == "UNSPECIFIED" {
		return ""
	}
	return strings.ToLower(rest)
}

// upperSnake turns KeyType into KEY_TYPE.
func upperSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}
