package hierarchy

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestObjectIterSplitsTopLevelMembers(t *testing.T) {
	data := []byte(` { "a" : 1 , "b\"q" :"x,}\\\"" ,"c":{"d":[1,{"e":"]"}]},"f":[ ],"g":null,"h":true,"i":-1.5e3 } `)
	it, ok := newObjectIter(data)
	if !ok {
		t.Fatal("not an object")
	}
	var keys, vals, spans []string
	for {
		k, v, start, end, more := it.next()
		if !more {
			break
		}
		keys = append(keys, string(k))
		vals = append(vals, string(v))
		spans = append(spans, string(data[start:end]))
	}
	wantKeys := []string{`"a"`, `"b\"q"`, `"c"`, `"f"`, `"g"`, `"h"`, `"i"`}
	wantVals := []string{`1`, `"x,}\\\""`, `{"d":[1,{"e":"]"}]}`, `[ ]`, `null`, `true`, `-1.5e3`}
	if strings.Join(keys, "|") != strings.Join(wantKeys, "|") {
		t.Errorf("keys = %q, want %q", keys, wantKeys)
	}
	if strings.Join(vals, "|") != strings.Join(wantVals, "|") {
		t.Errorf("values = %q, want %q", vals, wantVals)
	}
	if spans[0] != `"a" : 1` {
		t.Errorf("first span = %q", spans[0])
	}
}

func TestObjectIterNeverPanicsOnGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte(`{}[]",:\ a1`)
	for range 20000 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		it, ok := newObjectIter(b)
		for ok {
			_, _, _, _, ok = it.next()
		}
	}
}

func TestAppendLowerMatchesStringsToLower(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	samples := []string{"", "ABC", "Jörg ÅLEX ZOË", "İSTANBUL", "\xff\xfeA", "ΣΑΣ", "a\x00B"}
	for range 2000 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		samples = append(samples, string(b))
	}
	for _, s := range samples {
		if got, want := string(appendLower(nil, s)), strings.ToLower(s); got != want {
			t.Errorf("appendLower(%q) = %q, want %q", s, got, want)
		}
	}
}

func TestDecodeString(t *testing.T) {
	tests := []struct {
		tok  string
		want string
		ok   bool
	}{
		{`"plain"`, "plain", true},
		{`"a\"b\u00e9\n"`, "a\"bé\n", true},
		{`""`, "", true},
		{`12`, "", false},
		{`null`, "", false},
		{`"`, "", false},
		{`"\ud83d"`, "\ufffd", true}, // lone surrogate, as encoding/json reads it
	}
	for _, tt := range tests {
		got, ok := decodeString([]byte(tt.tok))
		if got != tt.want || ok != tt.ok {
			t.Errorf("decodeString(%s) = %q, %v; want %q, %v", tt.tok, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseRecordReadsKnownKeysAndBuildsWireAndSearchText(t *testing.T) {
	r := Record{
		ID: "o1", Name: "ACME Srl", Description: "Big ONE",
		CreatedAt: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		CustomData: json.RawMessage(`{"vat":"IT1","type":"distributor","createdBy":"own",` +
			`"createdByUser":{"user_id":"u1","name":"Jörg","on_behalf_of":true,"email":7},` +
			`"promotedFrom":{"level":"reseller"},"employees":12,"tags":["X","y"],` +
			`"createdAt":"2024-05-01T10:00:00+02:00","suspendedAt":"2024-06-01T00:00:00Z","note":null}`),
	}
	var o Org
	var m recMeta
	parseRecord(&r, &o, &m, &scratch{})

	if m.typ != TypeDistributor || m.typeAbsent {
		t.Errorf("type = %v (absent %v)", m.typ, m.typeAbsent)
	}
	if o.ParentID != "own" {
		t.Errorf("ParentID = %q", o.ParentID)
	}
	if want := time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC); !o.CreatedAt.Equal(want) || o.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v, want %v in UTC", o.CreatedAt, want)
	}
	if !o.UpdatedAt.Equal(o.CreatedAt) {
		t.Errorf("UpdatedAt = %v, want createdAt fallback", o.UpdatedAt)
	}
	if want := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC); !o.SuspendedAt.Equal(want) {
		t.Errorf("direct SuspendedAt = %v", o.SuspendedAt)
	}
	c := o.Creator
	if c == nil || c.UserID != "u1" || c.Name != "Jörg" || !c.OnBehalfOf || c.Email != "" || m.creatorNameNull {
		t.Errorf("creator = %+v (name null %v)", c, m.creatorNameNull)
	}
	if string(o.PromotedFrom) != `{"level":"reseller"}` {
		t.Errorf("PromotedFrom = %s", o.PromotedFrom)
	}
	wantWire := `{"vat":"IT1","type":"distributor","createdBy":"own","employees":12,"tags":["X","y"],` +
		`"createdAt":"2024-05-01T10:00:00+02:00","suspendedAt":"2024-06-01T00:00:00Z","note":null}`
	if string(o.CustomData) != wantWire {
		t.Errorf("wire custom_data =\n%s\nwant\n%s", o.CustomData, wantWire)
	}
	if !json.Valid(o.CustomData) {
		t.Error("wire custom_data is not valid JSON")
	}
	// Name, description, then every value but createdBy/createdByUser, as
	// text, lower-cased; null contributes nothing.
	wantBlob := "acme srl\x00big one\x00it1\x00distributor\x00{\"level\":\"reseller\"}\x0012\x00[\"x\",\"y\"]\x00" +
		"2024-05-01t10:00:00+02:00\x002024-06-01t00:00:00z\x00"
	if m.blob != wantBlob {
		t.Errorf("blob = %q\nwant   %q", m.blob, wantBlob)
	}
	if m.blob[:m.nameEnd] != "acme srl" || m.blob[m.nameEnd+1:m.descEnd] != "big one" {
		t.Errorf("sort keys = %q / %q", m.blob[:m.nameEnd], m.blob[m.nameEnd+1:m.descEnd])
	}
	if m.malformed+m.badField+m.badTimestamp != 0 {
		t.Errorf("unexpected problems %+v", m)
	}
}

func TestParseRecordKeepsPromotedFromOnNonDistributors(t *testing.T) {
	r := Record{ID: "c", CustomData: json.RawMessage(`{"type":"customer","promotedFrom":{"a":1},"createdByUser":{}}`)}
	var o Org
	var m recMeta
	parseRecord(&r, &o, &m, &scratch{})
	if string(o.CustomData) != `{"type":"customer","promotedFrom":{"a":1}}` || o.PromotedFrom != nil {
		t.Fatalf("custom_data = %s, promoted_from = %s", o.CustomData, o.PromotedFrom)
	}
	if o.Creator == nil || !m.creatorNameNull {
		t.Fatalf("an empty snapshot is a snapshot with a NULL name: %+v %v", o.Creator, m.creatorNameNull)
	}
}

func TestParseRecordUnchangedCustomDataIsCopiedVerbatim(t *testing.T) {
	raw := []byte(`{ "type" : "reseller",  "x": [1, 2] }`)
	r := Record{ID: "r", CustomData: raw}
	var o Org
	var m recMeta
	parseRecord(&r, &o, &m, &scratch{})
	if string(o.CustomData) != string(raw) {
		t.Fatalf("custom_data = %s", o.CustomData)
	}
	raw[3] = 'X' // the Tree must not share the caller's bytes
	if o.CustomData[3] == 'X' {
		t.Fatal("custom_data aliases the record's bytes")
	}
}

func TestParseRecordDecodesEscapedKeys(t *testing.T) {
	r := Record{ID: "c", CustomData: json.RawMessage(`{"\u0074ype":"reseller","create\u0064By":"d","createdByUser":{"n\u0061me":"Ann"}}`)}
	var o Org
	var m recMeta
	parseRecord(&r, &o, &m, &scratch{})
	if m.typ != TypeReseller || o.ParentID != "d" || o.Creator == nil || o.Creator.Name != "Ann" {
		t.Fatalf("escaped keys not read: type %v parent %q creator %+v", m.typ, o.ParentID, o.Creator)
	}
	if string(o.CustomData) != `{"\u0074ype":"reseller","create\u0064By":"d"}` {
		t.Fatalf("custom_data = %s", o.CustomData)
	}
}

// TestObjectIterAgreesWithEncodingJSON splits random objects (with quotes,
// backslashes, nesting and odd spacing) and compares every member with what
// encoding/json decodes.
func TestObjectIterAgreesWithEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	pieces := []string{`"`, `\`, `\\`, `\"`, "é", "}", "]", ",", ":", "{", "a", " ", "\u2028", "\x7f"}
	str := func() string {
		var b strings.Builder
		for range rng.IntN(6) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return b.String()
	}
	var value func(depth int) any
	value = func(depth int) any {
		switch n := rng.IntN(7); {
		case n == 0 && depth < 3:
			m := map[string]any{}
			for range rng.IntN(4) {
				m[str()] = value(depth + 1)
			}
			return m
		case n == 1 && depth < 3:
			var l []any
			for range rng.IntN(4) {
				l = append(l, value(depth+1))
			}
			return l
		case n == 2:
			return rng.Float64() * 1e6
		case n == 3:
			return rng.IntN(2) == 0
		case n == 4:
			return nil
		}
		return str()
	}
	for range 3000 {
		obj := map[string]any{}
		for range rng.IntN(6) {
			obj[str()] = value(0)
		}
		data, err := json.MarshalIndent(obj, "", []string{"", " ", "\t"}[rng.IntN(3)])
		if err != nil {
			t.Fatal(err)
		}
		it, ok := newObjectIter(data)
		if !ok {
			t.Fatalf("not an object: %s", data)
		}
		seen := 0
		for {
			key, val, start, end, more := it.next()
			if !more {
				break
			}
			seen++
			k := string(keyText(key))
			want, found := obj[k]
			if !found {
				t.Fatalf("key %q (token %s) not in %s", k, key, data)
			}
			var got any
			if err := json.Unmarshal(val, &got); err != nil {
				t.Fatalf("value %s of %q: %v", val, k, err)
			}
			wantJSON, _ := json.Marshal(want)
			gotJSON, _ := json.Marshal(got)
			if string(wantJSON) != string(gotJSON) {
				t.Fatalf("value of %q = %s, want %s", k, gotJSON, wantJSON)
			}
			if !strings.HasPrefix(string(data[start:end]), string(key)) || !strings.HasSuffix(string(data[start:end]), string(val)) {
				t.Fatalf("span %q does not hold key %s and value %s", data[start:end], key, val)
			}
		}
		if seen != len(obj) {
			t.Fatalf("saw %d members of %d in %s", seen, len(obj), data)
		}
	}
}
