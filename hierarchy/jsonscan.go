package hierarchy

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// The helpers below read JSON tokens in place. Build validates customData
// with json.Valid first, then walks its top-level members once with
// objectIter, keeping each member's text untouched for the wire and
// decoding only the values the domain reads; encoding/json would re-encode
// the object and allocate a map per record.

// keyText is the decoded text of a key token: the bytes between the quotes
// when there is no escape (no allocation), else the decoded string.
func keyText(key []byte) []byte {
	if len(key) < 2 {
		return nil
	}
	inner := key[1 : len(key)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner
	}
	s, _ := decodeString(key)
	return []byte(s)
}

// isPresent reports whether a value token carries a value (not absent, not null).
func isPresent(tok []byte) bool {
	return len(tok) > 0 && string(tok) != "null"
}

// isSet reports whether a value token carries a value other than "".
func isSet(tok []byte) bool {
	return isPresent(tok) && string(tok) != `""`
}

// decodeString decodes a JSON string token; ok is false for any other token.
func decodeString(tok []byte) (string, bool) {
	if len(tok) < 2 || tok[0] != '"' {
		return "", false
	}
	inner := tok[1 : len(tok)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	var s string
	if err := json.Unmarshal(tok, &s); err != nil {
		return "", false
	}
	return s, true
}

// appendString appends the decoded text of a JSON string token to dst; ok is
// false (and dst unchanged) for any other token.
func appendString(dst, tok []byte) ([]byte, bool) {
	if len(tok) < 2 || tok[0] != '"' {
		return dst, false
	}
	inner := tok[1 : len(tok)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return append(dst, inner...), true
	}
	s, ok := decodeString(tok)
	if !ok {
		return dst, false
	}
	return append(dst, s...), true
}

// objectIter walks the top-level members of a JSON object. It is only used
// on input that passed json.Valid, but it checks every bound anyway so that
// no input can make it panic.
type objectIter struct {
	data []byte
	i    int
}

// newObjectIter starts iterating data, which must be a JSON object.
func newObjectIter(data []byte) (objectIter, bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return objectIter{}, false
	}
	return objectIter{data: data, i: i + 1}, true
}

// next returns the next member's key token (with its quotes), its value
// token, and the [start, end) span of the whole member text.
func (it *objectIter) next() (key, val []byte, start, end int, ok bool) {
	d := it.data
	i := skipSpace(d, it.i)
	if i < len(d) && d[i] == ',' {
		i = skipSpace(d, i+1)
	}
	if i >= len(d) || d[i] != '"' {
		return nil, nil, 0, 0, false
	}
	start = i
	keyEnd := skipString(d, i)
	if keyEnd < 0 {
		return nil, nil, 0, 0, false
	}
	i = skipSpace(d, keyEnd)
	if i >= len(d) || d[i] != ':' {
		return nil, nil, 0, 0, false
	}
	i = skipSpace(d, i+1)
	end = skipValue(d, i)
	if end < 0 {
		return nil, nil, 0, 0, false
	}
	it.i = end
	return d[start:keyEnd], d[i:end], start, end, true
}

// skipSpace returns the index of the first non-whitespace byte at or after i.
func skipSpace(d []byte, i int) int {
	for i < len(d) {
		switch d[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the string token starting at i, or
// -1 if it is unterminated.
func skipString(d []byte, i int) int {
	for j := i + 1; j < len(d); {
		k := bytes.IndexByte(d[j:], '"')
		if k < 0 {
			return -1
		}
		q := j + k
		if backslashes(d[j:q])%2 == 0 {
			return q + 1
		}
		j = q + 1 // an escaped quote
	}
	return -1
}

// backslashes counts the backslashes ending b.
func backslashes(b []byte) int {
	n := 0
	for n < len(b) && b[len(b)-1-n] == '\\' {
		n++
	}
	return n
}

// skipValue returns the index just past the value token starting at i, or -1.
func skipValue(d []byte, i int) int {
	if i >= len(d) {
		return -1
	}
	switch d[i] {
	case '"':
		return skipString(d, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(d); j++ {
			switch d[j] {
			case '"':
				e := skipString(d, j)
				if e < 0 {
					return -1
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(d) {
		switch d[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			if j == i {
				return -1
			}
			return j
		}
		j++
	}
	return j
}
