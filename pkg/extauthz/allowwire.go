package extauthz

import (
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/keygate/keygate/pkg/authz"
)

// Field numbers of the messages an allow is made of, from Envoy's
// external_auth.proto, base.proto and protobuf's struct.proto.
const (
	checkResponseStatus          = 1 // google.rpc.Status
	checkResponseOK              = 3 // OkHttpResponse (oneof http_response)
	checkResponseDynamicMetadata = 4 // google.protobuf.Struct

	okHeaders                 = 2 // repeated HeaderValueOption
	okHeadersToRemove         = 5 // repeated string
	okResponseHeadersToAdd    = 6 // repeated HeaderValueOption
	okQueryParametersToRemove = 8 // repeated string

	headerValueOptionHeader = 1 // HeaderValue
	headerValueOptionAppend = 2 // google.protobuf.BoolValue
	headerValueKey          = 1
	headerValueValue        = 2

	structFields  = 1 // map<string, Value>
	mapEntryKey   = 1
	mapEntryValue = 2
	valueNumber   = 2 // double
	valueString   = 3
	valueStruct   = 5
)

// appendAllow appends the wire form of the key's allow for the target:
// status OK, the identity headers, headers_to_remove, the response
// headers, query_parameters_to_remove, and the dynamic metadata. It is the
// one builder of an allow (a forged-header answer decodes it and adds its
// removals); TestAllowWireMatchesMessage and FuzzAllowWire hold it to the
// same allow built from Envoy's Go types.
// It is what a key's allow is kept as (in the server's slabs,
// allowslabs.go): a few hundred bytes instead of the messages' few
// kilobytes. Encoding it directly costs about what marshalling the
// messages would, once per key and target.
func appendAllow(b []byte, k *authz.Key, t *authz.Target, names *headerNames, queryRemove []string) []byte {
	var ok, meta []byte
	for _, h := range names.identityOf(k) {
		if h.value != "" {
			ok = appendHeaderOption(ok, okHeaders, h.name, h.value)
		}
	}
	ok = protowire.AppendTag(ok, okHeadersToRemove, protowire.BytesType)
	ok = protowire.AppendString(ok, names.keyHeader)
	for _, h := range names.identityOf(k) {
		if h.value == "" {
			ok = protowire.AppendTag(ok, okHeadersToRemove, protowire.BytesType)
			ok = protowire.AppendString(ok, h.name)
		}
	}
	var hs [8]authz.Header
	for _, h := range k.AppendResponseHeaders(hs[:0], t) {
		ok = appendHeaderOption(ok, okResponseHeadersToAdd, h.Name, h.Value)
	}
	for _, q := range queryRemove {
		ok = protowire.AppendTag(ok, okQueryParametersToRemove, protowire.BytesType)
		ok = protowire.AppendString(ok, q)
	}

	for _, f := range metaFields(k) {
		if f[1] != "" {
			meta = appendStringField(meta, f[0], f[1])
		}
	}
	if rl, has := k.RateLimit(); has {
		var inner []byte
		inner = appendNumberField(inner, "requests_per_unit", float64(rl.RequestsPerUnit))
		inner = appendStringField(inner, "unit", rl.Unit.EnvoyName())
		var v []byte
		v = protowire.AppendTag(v, valueStruct, protowire.BytesType)
		v = protowire.AppendBytes(v, inner)
		meta = appendField(meta, RateLimitMetadataKey, v)
	}
	meta = appendStringField(meta, "service", t.Service)
	meta = appendStringField(meta, "kind", t.Kind)
	meta = appendStringField(meta, "operation", t.Operation)

	b = protowire.AppendTag(b, checkResponseStatus, protowire.BytesType)
	b = protowire.AppendVarint(b, 0) // an empty Status: code OK
	b = protowire.AppendTag(b, checkResponseOK, protowire.BytesType)
	b = protowire.AppendBytes(b, ok)
	b = protowire.AppendTag(b, checkResponseDynamicMetadata, protowire.BytesType)
	return protowire.AppendBytes(b, meta)
}

// appendHeaderOption appends a HeaderValueOption as field num: the header
// and `append: false` set explicitly (an empty BoolValue), as headerOption
// builds it.
func appendHeaderOption(b []byte, num protowire.Number, name, value string) []byte {
	var hv []byte
	hv = protowire.AppendTag(hv, headerValueKey, protowire.BytesType)
	hv = protowire.AppendString(hv, name)
	if value != "" {
		hv = protowire.AppendTag(hv, headerValueValue, protowire.BytesType)
		hv = protowire.AppendString(hv, value)
	}
	n := protowire.SizeTag(headerValueOptionHeader) + protowire.SizeBytes(len(hv)) +
		protowire.SizeTag(headerValueOptionAppend) + protowire.SizeBytes(0)
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	b = protowire.AppendTag(b, headerValueOptionHeader, protowire.BytesType)
	b = protowire.AppendBytes(b, hv)
	b = protowire.AppendTag(b, headerValueOptionAppend, protowire.BytesType)
	return protowire.AppendVarint(b, 0)
}

// appendField appends one entry of a Struct's fields map: name and the
// encoded Value v.
func appendField(b []byte, name string, v []byte) []byte {
	n := protowire.SizeTag(mapEntryKey) + protowire.SizeBytes(len(name)) +
		protowire.SizeTag(mapEntryValue) + protowire.SizeBytes(len(v))
	b = protowire.AppendTag(b, structFields, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	b = protowire.AppendTag(b, mapEntryKey, protowire.BytesType)
	b = protowire.AppendString(b, name)
	b = protowire.AppendTag(b, mapEntryValue, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendStringField(b []byte, name, value string) []byte {
	var v [64]byte
	vb := protowire.AppendTag(v[:0], valueString, protowire.BytesType)
	vb = protowire.AppendString(vb, value)
	return appendField(b, name, vb)
}

func appendNumberField(b []byte, name string, value float64) []byte {
	var v [16]byte
	vb := protowire.AppendTag(v[:0], valueNumber, protowire.Fixed64Type)
	vb = protowire.AppendFixed64(vb, math.Float64bits(value))
	return appendField(b, name, vb)
}

// allowEncodable reports whether every string of the key's allow for t is
// valid UTF-8, as protobuf requires of string fields. Keys and routes are
// validated long before, so this is a second line: appendAllow does not
// check, and a string protobuf would refuse is never sent.
func allowEncodable(k *authz.Key, t *authz.Target) bool {
	for _, f := range metaFields(k) {
		if !utf8.ValidString(f[1]) {
			return false
		}
	}
	var hs [8]authz.Header
	for _, h := range k.AppendResponseHeaders(hs[:0], t) {
		if !utf8.ValidString(h.Name) || !utf8.ValidString(h.Value) {
			return false
		}
	}
	return utf8.ValidString(t.Service) && utf8.ValidString(t.Kind) && utf8.ValidString(t.Operation)
}
