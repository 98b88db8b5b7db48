// Package codec encrypts Temporal payloads so that workflow histories on the
// Temporal server never hold plaintext customer or payment data. Every
// client and worker of the service uses DataConverter; the HTTP API serves
// Handler so the Temporal Web UI can show payloads decoded to operators
// whose token carries the pii scope.
package codec

import (
	"fmt"
	"net/http"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/acme/payments/internal/encryption"
)

const (
	// MetadataEncoding marks a payload this codec encrypted.
	MetadataEncoding = "binary/encrypted"
	// MetadataKeyID names the key a payload was sealed under, so payloads
	// written before a key rotation stay readable.
	MetadataKeyID = "encryption-key-id"
)

// aad binds ciphertexts to their use: a sealed field copied into a payload
// (or the reverse) does not decrypt.
var aad = []byte("temporal-payload/v1")

// Codec is a converter.PayloadCodec using the service's keyring.
type Codec struct {
	Keys *encryption.Keyring
}

var _ converter.PayloadCodec = (*Codec)(nil)

// Encode seals each payload (metadata and data) into a new payload whose
// only metadata is the encoding and key id.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := p.Marshal()
		if err != nil {
			return nil, fmt.Errorf("encode payload %d: %w", i, err)
		}
		keyID, sealed, err := c.Keys.Seal(plain, aad)
		if err != nil {
			return nil, fmt.Errorf("encode payload %d: %w", i, err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(MetadataEncoding),
				MetadataKeyID:              []byte(keyID),
			},
			Data: sealed,
		}
	}
	return out, nil
}

// Decode opens payloads this codec encrypted and passes others through
// unchanged (for example payloads written by the server itself).
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != MetadataEncoding {
			out[i] = p
			continue
		}
		keyID := string(p.GetMetadata()[MetadataKeyID])
		plain, err := c.Keys.Open(keyID, p.GetData(), aad)
		if err != nil {
			return nil, fmt.Errorf("decode payload %d (key %q): %w", i, keyID, err)
		}
		decoded := &commonpb.Payload{}
		if err := decoded.Unmarshal(plain); err != nil {
			return nil, fmt.Errorf("decode payload %d: %w", i, err)
		}
		out[i] = decoded
	}
	return out, nil
}

// DataConverter is the SDK's default converter with payloads encrypted.
func DataConverter(keys *encryption.Keyring) converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), &Codec{Keys: keys})
}

// Handler serves POST {prefix}/encode and {prefix}/decode in the remote
// codec protocol the Temporal UI and CLI speak. Authentication and CORS are
// the caller's (the HTTP API's) concern.
func Handler(keys *encryption.Keyring) http.Handler {
	return converter.NewPayloadCodecHTTPHandler(&Codec{Keys: keys})
}
