package codec

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/acme/payments/internal/encryption"
)

// fuzzRing is the keyring of both fuzz targets: k1 is the primary, k2 a
// second configured key, so a payload relabelled to k2 reaches a real key.
func fuzzRing(f *testing.F) *Codec {
	k, err := encryption.ParseKeys("k1:" + key(1) + ",k2:" + key(2))
	if err != nil {
		f.Fatal(err)
	}
	return &Codec{Keys: k}
}

// FuzzDecode feeds arbitrary payload data and metadata to Codec.Decode: it
// never panics, passes a payload it did not encrypt through untouched, and
// any payload Encode made decodes back to exactly what went in, while the
// same payload with one byte changed, or relabelled to another key, fails.
func FuzzDecode(f *testing.F) {
	c := fuzzRing(f)
	enc := []byte(MetadataEncoding)
	f.Add([]byte(`"jane@example.com"`), []byte("json/plain"), []byte("k1"), "", []byte(nil), uint(0), byte(1))
	f.Add([]byte{}, enc, []byte("k1"), "", []byte(nil), uint(3), byte(0x80))
	f.Add(bytes.Repeat([]byte{0}, 28), enc, []byte("k1"), "", []byte(nil), uint(27), byte(0xff))
	f.Add([]byte("not a ciphertext at all"), enc, []byte("k2"), "x", []byte("y"), uint(5), byte(2))
	f.Add([]byte("AAAA"), enc, []byte(""), "", []byte(nil), uint(1), byte(3))
	f.Add([]byte("AAAA"), enc, []byte("no such key"), "", []byte(nil), uint(1), byte(3))
	f.Add([]byte("AAAA"), enc, []byte("k1\x00"), "", []byte(nil), uint(1), byte(3))
	f.Add([]byte("\x0a\x02\x08\x01"), enc, []byte("\xff\xfe"), "encoding", []byte("binary/null"), uint(9), byte(4))
	f.Add([]byte(nil), []byte("binary/null"), []byte(nil), "", []byte(nil), uint(0), byte(0))
	f.Add([]byte("4242 4242 4242 4242"), []byte("binary/plain"), []byte("k1"), "messageType", []byte("payments.Attempt"), uint(100), byte(0x40))
	// A sealed payload that is itself the serialisation of a payload.
	inner, _ := (&commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`{"a":1}`)}).Marshal()
	f.Add(inner, enc, []byte("k1"), "", []byte(nil), uint(2), byte(5))

	f.Fuzz(func(t *testing.T, data, encoding, keyID []byte, metaKey string, metaVal []byte, pos uint, delta byte) {
		md := map[string][]byte{converter.MetadataEncoding: encoding, MetadataKeyID: keyID}
		if metaKey != "" {
			md[metaKey] = metaVal
		}
		p := &commonpb.Payload{Metadata: md, Data: data}

		// Arbitrary input: no panic; not ours, passed through as is.
		out, err := c.Decode([]*commonpb.Payload{p})
		if string(md[converter.MetadataEncoding]) != MetadataEncoding {
			if err != nil || len(out) != 1 || out[0] != p {
				t.Fatalf("a payload the codec did not encrypt was not passed through: %v", err)
			}
		} else if err == nil && (len(out) != 1 || out[0] == nil) {
			t.Fatalf("decoded %d payloads from 1", len(out))
		} else if err != nil && len(data) >= 8 && strings.Contains(err.Error(), string(data)) && !bytes.Contains(keyID, data) {
			t.Fatalf("decode error repeats the payload's data: %v", err)
		}

		// The input as a payload to encrypt round-trips exactly. One that
		// protobuf cannot serialise (a metadata key that is not UTF-8) is
		// refused with an error: the SDK cannot make such a payload.
		sealed, err := c.Encode([]*commonpb.Payload{p})
		if _, merr := proto.Marshal(p); merr != nil {
			if err == nil {
				t.Fatalf("encoded a payload protobuf cannot serialise (%v)", merr)
			}
			return
		}
		if err != nil || len(sealed) != 1 {
			t.Fatalf("encode: %v", err)
		}
		s := sealed[0]
		if len(s.Metadata) != 2 || string(s.Metadata[converter.MetadataEncoding]) != MetadataEncoding || string(s.Metadata[MetadataKeyID]) != "k1" {
			t.Fatalf("encoded metadata %q", s.Metadata)
		}
		if len(data) >= 16 && bytes.Contains(s.Data, data) {
			t.Fatal("the encoded payload holds the data in the clear")
		}
		back, err := c.Decode(sealed)
		if err != nil || len(back) != 1 || !proto.Equal(back[0], p) {
			t.Fatalf("round trip: %v\n got %v\nwant %v", err, back, p)
		}

		// One byte changed, or another key named: refused.
		if delta == 0 {
			delta = 1
		}
		bad := proto.Clone(s).(*commonpb.Payload)
		bad.Data[pos%uint(len(bad.Data))] ^= delta
		if _, err := c.Decode([]*commonpb.Payload{bad}); err == nil {
			t.Fatalf("a payload with byte %d changed decoded", pos%uint(len(bad.Data)))
		}
		relabelled := proto.Clone(s).(*commonpb.Payload)
		relabelled.Metadata[MetadataKeyID] = []byte("k2")
		if _, err := c.Decode([]*commonpb.Payload{relabelled}); err == nil {
			t.Fatal("a payload relabelled to another key decoded")
		}
	})
}

// FuzzHandler posts arbitrary bodies to the remote codec endpoint the UI
// calls: it never panics, answers 200 with as many payloads as were sent or
// a 400, and whatever /encode answers, /decode turns back into exactly the
// payloads that were sent.
func FuzzHandler(f *testing.F) {
	c := fuzzRing(f)
	h := Handler(c.Keys)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	payload := func(encoding, keyID, data string) string {
		return fmt.Sprintf(`{"metadata":{"encoding":%q,"encryption-key-id":%q},"data":%q}`, b64(encoding), b64(keyID), b64(data))
	}
	genuine, err := c.Encode([]*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"jane@example.com"`)}})
	if err != nil {
		f.Fatal(err)
	}
	genuineJSON, err := protojson.Marshal(&commonpb.Payloads{Payloads: genuine})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		`{"payloads":[]}`,
		`{}`,
		``,
		`null`,
		`[]`,
		`{"payloads":null}`,
		`{"payloads":[null]}`,
		`{"payloads":[{}]}`,
		`{"payloads":[` + payload("json/plain", "", `"secret"`) + `]}`,
		`{"payloads":[` + payload(MetadataEncoding, "k1", "too short") + `]}`,
		`{"payloads":[` + payload(MetadataEncoding, "k9", string(bytes.Repeat([]byte{1}, 40))) + `]}`,
		`{"payloads":[` + payload(MetadataEncoding, "", "") + `,` + payload("binary/null", "", "") + `]}`,
		`{"payloads":[{"metadata":{"encoding":"not base64!"},"data":"AA=="}]}`,
		`{"payloads":[{"metadata":{"encoding":"` + b64(MetadataEncoding) + `"},"data":"AA"}]}`,
		`{"payloads":[{"externalPayloads":[{"sizeBytes":"18446744073709551615"}]}]}`,
		`{"payloads":[{"data":"AA=="}],"payloads":[{"data":"AQ=="}]}`,
		`{"payloads":[{"unknown":1}]}`,
		`{"payloads":[{"metadata":{"\u0000":"AA=="}}]}`,
		`{"payloads":[` + strings.Repeat(`{},`, 50) + `{}]}`,
		strings.Repeat(`{"payloads":[`, 20),
		"\xef\xbb\xbf{\"payloads\":[]}",
		string(genuineJSON),
	} {
		f.Add([]byte(s))
	}

	post := func(t *testing.T, path string, body []byte) (int, []*commonpb.Payload) {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body)))
		if rec.Code != http.StatusOK {
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("POST %s: status %d", path, rec.Code)
			}
			return rec.Code, nil
		}
		var got commonpb.Payloads
		if err := protojson.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("POST %s: 200 with a body the remote codec client cannot read: %v\n%s", path, err, rec.Body.Bytes())
		}
		return rec.Code, got.Payloads
	}

	f.Fuzz(func(t *testing.T, body []byte) {
		var sent commonpb.Payloads
		parseErr := protojson.Unmarshal(body, &sent)

		code, decoded := post(t, "/decode", body)
		if parseErr != nil && code == http.StatusOK {
			t.Fatal("/decode answered 200 to a body that is not a Payloads message")
		}
		if code == http.StatusOK && len(decoded) != len(sent.Payloads) {
			t.Fatalf("/decode answered %d payloads for %d", len(decoded), len(sent.Payloads))
		}

		code, encoded := post(t, "/encode", body)
		if parseErr != nil {
			if code == http.StatusOK {
				t.Fatal("/encode answered 200 to a body that is not a Payloads message")
			}
			return
		}
		if code != http.StatusOK || len(encoded) != len(sent.Payloads) {
			t.Fatalf("/encode of a valid Payloads message: %d, %d payloads for %d", code, len(encoded), len(sent.Payloads))
		}
		for i, p := range encoded {
			if string(p.GetMetadata()[converter.MetadataEncoding]) != MetadataEncoding {
				t.Fatalf("/encode payload %d is not encrypted: %q", i, p.GetMetadata())
			}
		}
		again, err := protojson.Marshal(&commonpb.Payloads{Payloads: encoded})
		if err != nil {
			t.Fatal(err)
		}
		code, back := post(t, "/decode", again)
		if code != http.StatusOK || len(back) != len(sent.Payloads) {
			t.Fatalf("/decode of /encode's answer: %d, %d payloads for %d", code, len(back), len(sent.Payloads))
		}
		for i := range back {
			if !proto.Equal(back[i], sent.Payloads[i]) {
				t.Fatalf("payload %d round-tripped as %v, sent %v", i, back[i], sent.Payloads[i])
			}
		}
	})
}
