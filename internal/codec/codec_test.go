package codec

import (
	"bytes"
	"encoding/base64"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/acme/payments/internal/encryption"
)

func ring(t *testing.T, spec string) *encryption.Keyring {
	t.Helper()
	k, err := encryption.ParseKeys(spec)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func key(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }

func TestRoundTripHidesPlaintext(t *testing.T) {
	dc := DataConverter(ring(t, "k1:"+key(1)))
	secret := map[string]string{"customer_email": "jane@example.com", "card": "4242424242424242"}
	p, err := dc.ToPayload(secret)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(p.Metadata[converter.MetadataEncoding]); got != MetadataEncoding {
		t.Fatalf("encoding %q", got)
	}
	if string(p.Metadata[MetadataKeyID]) != "k1" {
		t.Fatalf("key id %q", p.Metadata[MetadataKeyID])
	}
	raw, _ := p.Marshal()
	for _, s := range []string{"jane@example.com", "4242424242424242", "json/plain"} {
		if bytes.Contains(raw, []byte(s)) {
			t.Fatalf("encoded payload contains %q", s)
		}
	}
	var back map[string]string
	if err := dc.FromPayload(p, &back); err != nil {
		t.Fatal(err)
	}
	if back["card"] != "4242424242424242" {
		t.Fatalf("round trip: %v", back)
	}
}

func TestDecodeAfterRotationAndTamper(t *testing.T) {
	old := &Codec{Keys: ring(t, "k1:"+key(1))}
	rotated := &Codec{Keys: ring(t, "k2:"+key(2)+",k1:"+key(1))}
	in := []*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"x"`)}}
	enc, err := old.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := rotated.Decode(enc)
	if err != nil || string(dec[0].Data) != `"x"` {
		t.Fatalf("decode under rotated ring: %v", err)
	}
	enc2, _ := rotated.Encode(in)
	if string(enc2[0].Metadata[MetadataKeyID]) != "k2" {
		t.Fatal("rotated ring did not encode under its primary")
	}
	if _, err := old.Decode(enc2); err == nil {
		t.Fatal("decoded a payload sealed under a key the ring lacks")
	}
	enc[0].Data[len(enc[0].Data)-1] ^= 1
	if _, err := rotated.Decode(enc); err == nil {
		t.Fatal("tampered payload decoded")
	}
}

func TestDecodePassesThroughUnencrypted(t *testing.T) {
	c := &Codec{Keys: ring(t, "k1:"+key(1))}
	in := []*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("binary/null")}}}
	out, err := c.Decode(in)
	if err != nil || out[0] != in[0] {
		t.Fatalf("pass-through: %v", err)
	}
}
