package workflows_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/acme/payments/activities"
	"github.com/acme/payments/internal/codec"
	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/payload"
	"github.com/acme/payments/internal/stacktest"
	"github.com/acme/payments/workflows"
)

// The Web UI shows the workflows' payloads decoded: these tests hold them
// to snake_case names, durations as strings, enums by name and no zero
// times, and hold every payload type to reading the legacy shape (Go field
// names, nanoseconds, enum numbers) that histories recorded before carry.

var (
	ctxType = reflect.TypeFor[context.Context]()
	errType = reflect.TypeFor[error]()
	durType = reflect.TypeFor[time.Duration]()
	timType = reflect.TypeFor[time.Time]()
)

// workflowFuncs are the workflow types by name, as histories name them.
var workflowFuncs = map[string]any{
	"Import": workflows.Import, "Export": workflows.Export, "OrderPayment": workflows.OrderPayment,
}

// recordedWorkflows are every workflow type with recorded histories. The
// key rotation's payloads were snake_case from its start (no legacy shape
// to read), so only the re-encoding checks hold them.
var recordedWorkflows = map[string]any{
	"Import": workflows.Import, "Export": workflows.Export, "OrderPayment": workflows.OrderPayment, "Rotate": workflows.Rotate,
	"StagingRetention": workflows.StagingRetention,
}

// messageTypes are the payloads of signals and updates, by name: the
// update's argument and result (nil: no payload).
var messageTypes = map[string][2]reflect.Type{
	workflows.SignalAttemptRecorded: {reflect.TypeFor[workflows.AttemptRecorded]()},
	workflows.SignalLedgerChanged:   {},
	workflows.UpdateGatewayResult:   {reflect.TypeFor[ledger.GatewayResult](), reflect.TypeFor[ledger.Result]()},
	workflows.UpdateAttempt:         {reflect.TypeFor[ledger.Payment](), reflect.TypeFor[ledger.Result]()},
}

// activityTypes returns an activity's input and result types: every
// method of *activities.Activities (or *activities.Rotation) shaped (ctx, In) (Out, error) or
// (ctx, In) error is one.
func activityTypes(name string) (in, out reflect.Type, ok bool) {
	m, ok := reflect.TypeFor[*activities.Activities]().MethodByName(name)
	if !ok {
		// The key rotation's activities (see recordedWorkflows).
		if m, ok = reflect.TypeFor[*activities.Rotation]().MethodByName(name); !ok {
			return nil, nil, false
		}
	}
	ft := m.Type // receiver first
	if ft.NumIn() != 3 || ft.In(1) != ctxType || ft.NumOut() < 1 || ft.Out(ft.NumOut()-1) != errType {
		return nil, nil, false
	}
	in = ft.In(2)
	if ft.NumOut() == 2 {
		out = ft.Out(0)
	}
	return in, out, true
}

// payloadRoots are every type that travels as a payload: workflow inputs
// and results, activity inputs and results, signals, updates and queries
// (whose answers are the workflows' state types, reached from their
// results).
func payloadRoots(t *testing.T) []reflect.Type {
	var roots []reflect.Type
	for _, f := range workflowFuncs {
		ft := reflect.TypeOf(f)
		roots = append(roots, ft.In(1), ft.Out(0))
	}
	at := reflect.TypeFor[*activities.Activities]()
	n := 0
	for i := range at.NumMethod() {
		if in, out, ok := activityTypes(at.Method(i).Name); ok {
			roots = append(roots, in)
			if out != nil {
				roots = append(roots, out)
			}
			n++
		}
	}
	if n < 10 {
		t.Fatalf("only %d activities found", n)
	}
	for _, m := range messageTypes {
		for _, typ := range m {
			if typ != nil {
				roots = append(roots, typ)
			}
		}
	}
	return roots
}

// payloadStructs walks the roots to every struct type in a payload.
func payloadStructs(t *testing.T) []reflect.Type {
	seen := map[reflect.Type]bool{}
	var out []reflect.Type
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			walk(typ.Elem())
			return
		case reflect.Struct:
		default:
			return
		}
		if typ == timType || seen[typ] {
			return
		}
		seen[typ] = true
		out = append(out, typ)
		for i := range typ.NumField() {
			if f := typ.Field(i); f.IsExported() && f.Tag.Get("json") != "-" {
				walk(f.Type)
			}
		}
	}
	for _, r := range payloadRoots(t) {
		walk(r)
	}
	return out
}

// Every payload struct names its fields snakeCase(FieldName), leaves zero
// times out, and reads the legacy shape itself (a json.Unmarshaler: Go's
// case-insensitive match alone misses import_id for ImportID); a type with
// a duration or a numeric enum also writes them itself.
func TestPayloadTypesFollowTheNamingRule(t *testing.T) {
	structs := payloadStructs(t)
	names := map[string]bool{}
	for _, typ := range structs {
		names[typ.String()] = true
		if !reflect.PointerTo(typ).Implements(reflect.TypeFor[json.Unmarshaler]()) {
			t.Errorf("%s has no UnmarshalJSON reading the legacy shape", typ)
		}
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag := f.Tag.Get("json")
			if !f.IsExported() || tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if want := payload.SnakeCase(f.Name); name != want {
				t.Errorf("%s.%s: json name %q, want %q", typ, f.Name, name, want)
			}
			if f.Type == timType && !strings.Contains(opts, "omitzero") {
				t.Errorf("%s.%s: a time without omitzero", typ, f.Name)
			}
			numericEnum := f.Type.PkgPath() != "" && f.Type.Kind() >= reflect.Int && f.Type.Kind() <= reflect.Uint64
			if (f.Type == durType || numericEnum) && !typ.Implements(reflect.TypeFor[json.Marshaler]()) && !f.Type.Implements(reflect.TypeFor[json.Marshaler]()) {
				t.Errorf("%s.%s (%s) is written as a number", typ, f.Name, f.Type)
			}
		}
	}
	for _, want := range []string{"workflows.ImportParams", "workflows.OrderPaymentState", "workflows.ExportProgress",
		"activities.ImportPlan", "records.Chunk", "importer.ChunkResult", "export.Params", "ledger.AttemptResult", "ledger.GatewayResult"} {
		if !names[want] {
			t.Errorf("%s not reached from the workflows' and activities' signatures", want)
		}
	}
}

// Every payload type, filled in, comes back the same from its new shape
// and from the legacy shape, and its new shape has only snake_case keys,
// string durations and enum names.
func TestPayloadTypesRoundTripBothShapes(t *testing.T) {
	for _, typ := range payloadStructs(t) {
		t.Run(typ.String(), func(t *testing.T) {
			want := reflect.New(typ)
			fill(want.Elem(), 0)
			b, err := json.Marshal(want.Interface())
			if err != nil {
				t.Fatal(err)
			}
			checkShape(t, b)
			got := reflect.New(typ)
			if err := json.Unmarshal(b, got.Interface()); err != nil {
				t.Fatalf("new shape %s: %v", b, err)
			}
			if !reflect.DeepEqual(got.Interface(), want.Interface()) {
				t.Fatalf("new shape %s:\n got %+v\nwant %+v", b, got.Elem(), want.Elem())
			}
			legacy, err := json.Marshal(legacyShape(want.Elem()))
			if err != nil {
				t.Fatal(err)
			}
			got = reflect.New(typ)
			if err := json.Unmarshal(legacy, got.Interface()); err != nil {
				t.Fatalf("legacy shape %s: %v", legacy, err)
			}
			if !reflect.DeepEqual(got.Interface(), want.Interface()) {
				t.Fatalf("legacy shape %s:\n got %+v\nwant %+v", legacy, got.Elem(), want.Elem())
			}
		})
	}
}

// fill sets every exported field of v to a value that is not zero.
func fill(v reflect.Value, depth int) {
	switch {
	case v.Type() == timType:
		v.Set(reflect.ValueOf(time.Date(2026, 12, 3, 9, 24, 56, 887094970, time.UTC)))
		return
	case v.Type() == durType:
		v.SetInt(int64(90 * time.Second))
		return
	case v.Type() == reflect.TypeFor[ledger.Outcome]():
		v.SetInt(int64(ledger.Settled))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() && f.Tag.Get("json") != "-" {
				fill(v.Field(i), depth+1)
			}
		}
	case reflect.Pointer:
		if depth < 6 {
			v.Set(reflect.New(v.Type().Elem()))
			fill(v.Elem(), depth+1)
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i), depth+1)
		}
	case reflect.String:
		v.SetString("v" + fmt.Sprint(depth))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(7 + depth))
	}
}

// legacyShape is v as the SDK's JSON converter wrote it before payloads
// had tags: Go field names, durations and enums as numbers.
func legacyShape(v reflect.Value) any {
	switch {
	case v.Type() == timType:
		return v.Interface()
	case v.Type() == durType, v.Type() == reflect.TypeFor[ledger.Outcome]():
		return v.Int()
	}
	switch v.Kind() {
	case reflect.Struct:
		m := map[string]any{}
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() && f.Tag.Get("json") != "-" {
				m[f.Name] = legacyShape(v.Field(i))
			}
		}
		return m
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return legacyShape(v.Elem())
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		s := make([]any, v.Len())
		for i := range s {
			s[i] = legacyShape(v.Index(i))
		}
		return s
	}
	return v.Interface()
}

var snakeKey = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// checkShape fails unless every key in JSON b is snake_case, durations
// (keys ending in _timeout) are duration strings, outcomes are names and
// no time is the zero time.
func checkShape(t *testing.T, b []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if !snakeKey.MatchString(k) {
					t.Errorf("%s: key %q is not snake_case in %s", path, k, b)
				}
				switch {
				case strings.HasSuffix(k, "_timeout"):
					if s, ok := e.(string); !ok {
						t.Errorf("%s.%s: duration %v is not a string", path, k, e)
					} else if _, err := time.ParseDuration(s); err != nil {
						t.Errorf("%s.%s: %v", path, k, err)
					}
				case k == "outcome":
					if _, ok := e.(string); !ok {
						t.Errorf("%s.%s: outcome %v is not a name", path, k, e)
					}
				}
				walk(path+"."+k, e)
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		case string:
			if strings.HasPrefix(v, "0001-01-01") {
				t.Errorf("%s: zero time in %s", path, b)
			}
		}
	}
	walk("$", v)
}

// Every payload of every recorded history, old shape or new, decodes
// through the service's data converter into its Go type, and re-encoded
// (what the UI's codec shows for runs from now on) has the new shape and
// the same value.
func TestRecordedPayloadsReencodeInTheNewShape(t *testing.T) {
	keys, err := encryption.ParseKeys(stacktest.TestKeys)
	if err != nil {
		t.Fatal(err)
	}
	dc := codec.DataConverter(keys)
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded histories: %v", err)
	}
	kinds := map[string]int{}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			h, err := client.HistoryFromJSON(r, client.HistoryJSONOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// Recordings made since (named *-snake-payloads) hold the new
			// shape already, memo fields included.
			newShape := strings.HasSuffix(f, "-snake-payloads.json")
			for _, tp := range typedPayloads(t, h) {
				kinds[tp.what]++
				reencode(t, dc, keys, tp)
				if v := recordedValue(t, tp.p); newShape && !snakeOnly(v) {
					t.Errorf("%s %s recorded in the legacy shape: %v", tp.what, tp.name, v)
				}
			}
			for _, ev := range h.GetEvents() {
				memo := ev.GetWorkflowPropertiesModifiedEventAttributes().GetUpsertedMemo().GetFields()
				if m := ev.GetWorkflowExecutionStartedEventAttributes().GetMemo().GetFields(); m != nil {
					memo = m
				}
				for k := range memo {
					if newShape && !snakeKey.MatchString(k) {
						t.Errorf("event %d: memo field %q is not snake_case", ev.GetEventId(), k)
					}
				}
				if newShape && len(memo) > 0 {
					kinds["memo"]++
				}
			}
		})
	}
	for _, want := range []string{"workflow input", "workflow result", "activity input", "activity result",
		"local activity result", "signal", "update argument", "update result", "memo"} {
		if kinds[want] == 0 {
			t.Errorf("no %s in the recorded histories (%v)", want, kinds)
		}
	}
}

type typedPayload struct {
	what string // "activity input", …
	name string // the workflow, activity, signal or update
	typ  reflect.Type
	p    *commonpb.Payload
}

// typedPayloads finds h's payloads that are the service's types, each with
// its Go type.
func typedPayloads(t *testing.T, h *historypb.History) []typedPayload {
	t.Helper()
	var out []typedPayload
	add := func(what, name string, typ reflect.Type, ps *commonpb.Payloads) {
		if typ == nil {
			return
		}
		for _, p := range ps.GetPayloads() {
			out = append(out, typedPayload{what, name, typ, p})
		}
	}
	var workflow string
	scheduled := map[int64]string{} // activity by scheduled event id
	updates := map[string]string{}  // update name by update id
	for _, ev := range h.GetEvents() {
		if a := ev.GetWorkflowExecutionStartedEventAttributes(); a != nil {
			workflow = a.GetWorkflowType().GetName()
			f, ok := recordedWorkflows[workflow]
			if !ok {
				t.Fatalf("unknown workflow type %q", workflow)
			}
			add("workflow input", workflow, reflect.TypeOf(f).In(1), a.GetInput())
		}
		if a := ev.GetWorkflowExecutionCompletedEventAttributes(); a != nil {
			add("workflow result", workflow, reflect.TypeOf(recordedWorkflows[workflow]).Out(0), a.GetResult())
		}
		if a := ev.GetWorkflowExecutionContinuedAsNewEventAttributes(); a != nil {
			add("workflow input", workflow, reflect.TypeOf(recordedWorkflows[workflow]).In(1), a.GetInput())
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			name := a.GetActivityType().GetName()
			in, _, ok := activityTypes(name)
			if !ok {
				t.Fatalf("event %d: unknown activity %q", ev.GetEventId(), name)
			}
			scheduled[ev.GetEventId()] = name
			add("activity input", name, in, a.GetInput())
		}
		if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil {
			name := scheduled[a.GetScheduledEventId()]
			_, res, _ := activityTypes(name)
			add("activity result", name, res, a.GetResult())
		}
		if a := ev.GetMarkerRecordedEventAttributes(); a != nil && a.GetMarkerName() == "LocalActivity" {
			var data struct{ ActivityType string }
			if err := converter.GetDefaultDataConverter().FromPayloads(decoded(t, a.GetDetails()["data"]), &data); err != nil {
				t.Fatalf("event %d: marker data: %v", ev.GetEventId(), err)
			}
			_, res, ok := activityTypes(data.ActivityType)
			if !ok {
				t.Fatalf("event %d: unknown local activity %q", ev.GetEventId(), data.ActivityType)
			}
			add("local activity result", data.ActivityType, res, a.GetDetails()["result"])
		}
		if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil {
			m, ok := messageTypes[a.GetSignalName()]
			if !ok {
				t.Fatalf("event %d: unknown signal %q", ev.GetEventId(), a.GetSignalName())
			}
			add("signal", a.GetSignalName(), m[0], a.GetInput())
		}
		if a := ev.GetWorkflowExecutionUpdateAcceptedEventAttributes(); a != nil {
			in := a.GetAcceptedRequest().GetInput()
			m, ok := messageTypes[in.GetName()]
			if !ok {
				t.Fatalf("event %d: unknown update %q", ev.GetEventId(), in.GetName())
			}
			updates[a.GetProtocolInstanceId()] = in.GetName()
			add("update argument", in.GetName(), m[0], in.GetArgs())
		}
		if a := ev.GetWorkflowExecutionUpdateCompletedEventAttributes(); a != nil {
			name := updates[a.GetMeta().GetUpdateId()]
			add("update result", name, messageTypes[name][1], a.GetOutcome().GetSuccess())
		}
	}
	return out
}

// decoded opens ps's encrypted payloads with the test keys.
func decoded(t *testing.T, ps *commonpb.Payloads) *commonpb.Payloads {
	t.Helper()
	keys, err := encryption.ParseKeys(stacktest.TestKeys)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := (&codec.Codec{Keys: keys}).Decode(ps.GetPayloads())
	if err != nil {
		t.Fatal(err)
	}
	return &commonpb.Payloads{Payloads: plain}
}

// reencode decodes tp into its type through dc, encodes it again, opens
// the result as the UI's codec does, and checks its shape and value.
func reencode(t *testing.T, dc converter.DataConverter, keys *encryption.Keyring, tp typedPayload) {
	t.Helper()
	first := reflect.New(tp.typ)
	if err := dc.FromPayload(tp.p, first.Interface()); err != nil {
		t.Fatalf("%s %s: decode: %v", tp.what, tp.name, err)
	}
	again, err := dc.ToPayload(first.Elem().Interface())
	if err != nil {
		t.Fatalf("%s %s: encode: %v", tp.what, tp.name, err)
	}
	plain, err := (&codec.Codec{Keys: keys}).Decode([]*commonpb.Payload{again})
	if err != nil {
		t.Fatal(err)
	}
	checkShape(t, plain[0].GetData())
	// Nothing recorded is lost on the way in: each recorded value is in
	// the decoded one, written in the shape it was recorded in.
	recorded := recordedValue(t, tp.p)
	var rewritten any
	if err := json.Unmarshal(plain[0].GetData(), &rewritten); err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(recorded); !snakeOnly(recorded) {
		b, err := json.Marshal(legacyShape(first.Elem()))
		if err != nil {
			t.Fatal(err)
		}
		rewritten = nil
		if err := json.Unmarshal(b, &rewritten); err != nil {
			t.Fatal(err)
		}
	} else if len(b) == 0 {
		t.Fatal("empty payload")
	}
	if path := missing("$", recorded, rewritten); path != "" {
		t.Fatalf("%s %s: %s of the recorded payload is lost when decoded", tp.what, tp.name, path)
	}
	second := reflect.New(tp.typ)
	if err := dc.FromPayload(again, second.Interface()); err != nil {
		t.Fatalf("%s %s: decode the new shape: %v", tp.what, tp.name, err)
	}
	if !reflect.DeepEqual(first.Interface(), second.Interface()) {
		t.Fatalf("%s %s: changed on its way through the new shape:\n%+v\n%+v", tp.what, tp.name, first.Elem(), second.Elem())
	}
}

// snakeOnly reports whether every object key in v is snake_case: a payload
// recorded in the new shape.
func snakeOnly(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if !snakeKey.MatchString(k) || !snakeOnly(e) {
				return false
			}
		}
	case []any:
		for _, e := range v {
			if !snakeOnly(e) {
				return false
			}
		}
	}
	return true
}

// legacyRenames are keys of the oldest recordings that decode into other
// fields (see ImportParams and ledger.GatewayResult).
var legacyRenames = map[string]bool{"Type": true, "Settlement": true}

// missing returns the path of the first value of recorded that got does
// not hold, or "".
func missing(path string, recorded, got any) string {
	switch r := recorded.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return path
		}
		for k, e := range r {
			if legacyRenames[k] {
				continue
			}
			if _, ok := g[k]; !ok {
				if s, ok := e.(string); ok && strings.HasPrefix(s, "0001-01-01") {
					continue // a zero time, left out now
				}
				return path + "." + k
			}
			if p := missing(path+"."+k, e, g[k]); p != "" {
				return p
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(r) {
			return path
		}
		for i := range r {
			if p := missing(fmt.Sprintf("%s[%d]", path, i), r[i], g[i]); p != "" {
				return p
			}
		}
		return ""
	}
	if !reflect.DeepEqual(recorded, got) {
		return fmt.Sprintf("%s (%v, decoded %v)", path, recorded, got)
	}
	return ""
}

// recordedValue is p's JSON as recorded, decoded as untyped values.
func recordedValue(t *testing.T, p *commonpb.Payload) any {
	t.Helper()
	var v any
	if err := converter.GetDefaultDataConverter().FromPayloads(decoded(t, &commonpb.Payloads{Payloads: []*commonpb.Payload{p}}), &v); err != nil {
		t.Fatal(err)
	}
	return v
}
