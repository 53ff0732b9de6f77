package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"google.golang.org/protobuf/types/pluginpb"

	// The API's descriptors, with their google.api.http rules, in protoregistry.GlobalFiles.
	_ "github.com/deckhandhq/deckhand/proto/deckhand/api/v1"
)

const committed = "../../controller/rest/openapi.json"

func loadCommitted(t *testing.T) *openapi3.T {
	t.Helper()
	data, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		t.Fatalf("load %s: %v", committed, err)
	}
	return doc
}

func TestCommittedDocumentIsValidOpenAPI3(t *testing.T) {
	doc := loadCommitted(t)
	if doc.OpenAPI != openAPIVersion {
		t.Fatalf("openapi is %q, want %q", doc.OpenAPI, openAPIVersion)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("%s is not a valid OpenAPI document: %v", committed, err)
	}
}

// TestEveryRuleHasItsOperation holds the committed document against the compiled API: every
// google.api.http rule is an operation at its path and verb, and nothing else is.
func TestEveryRuleHasItsOperation(t *testing.T) {
	doc := loadCommitted(t)
	variable := regexp.MustCompile(`\{([^=}]+)=[^}]*\}`)
	rules, streams := 0, 0
	protoregistry.GlobalFiles.RangeFilesByPackage(protoreflect.FullName("deckhand.api.v1"), func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				md := sd.Methods().Get(j)
				rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
				if rule == nil {
					continue
				}
				rules++
				verb, path := ruleOf(rule)
				path = variable.ReplaceAllString(path, "{$1}")
				want := string(sd.Name()) + "_" + string(md.Name())
				item := doc.Paths.Value(path)
				if item == nil {
					t.Errorf("%s: no path %s", md.FullName(), path)
					continue
				}
				op := item.GetOperation(verb)
				if op == nil {
					t.Errorf("%s: no %s %s", md.FullName(), verb, path)
					continue
				}
				if op.OperationID != want {
					t.Errorf("%s %s: operationId %q, want %q", verb, path, op.OperationID, want)
				}
				ok := op.Responses.Status(200)
				if ok == nil || ok.Value == nil {
					t.Errorf("%s %s: no 200 response", verb, path)
					continue
				}
				if md.IsStreamingServer() {
					streams++
					if ok.Value.Content.Get("application/x-ndjson") == nil || len(ok.Value.Content) != 1 {
						t.Errorf("%s %s streams, but its 200 response is %v, want only application/x-ndjson", verb, path, keys(ok.Value.Content))
					}
				} else if ok.Value.Content.Get("application/json") == nil {
					t.Errorf("%s %s: 200 response is %v, want application/json", verb, path, keys(ok.Value.Content))
				}
				if op.Responses.Default() == nil {
					t.Errorf("%s %s: no default (error) response", verb, path)
				}
			}
		}
		return true
	})
	if rules == 0 || streams == 0 {
		t.Fatalf("found %d google.api.http rules and %d streaming methods in deckhand.api.v1", rules, streams)
	}
	ops := 0
	for _, item := range doc.Paths.Map() {
		ops += len(item.Operations())
	}
	if ops != rules {
		t.Errorf("the document has %d operations, the protos %d google.api.http rules", ops, rules)
	}
}

func ruleOf(r *annotations.HttpRule) (verb, path string) {
	switch p := r.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return "GET", p.Get
	case *annotations.HttpRule_Put:
		return "PUT", p.Put
	case *annotations.HttpRule_Post:
		return "POST", p.Post
	case *annotations.HttpRule_Delete:
		return "DELETE", p.Delete
	case *annotations.HttpRule_Patch:
		return "PATCH", p.Patch
	case *annotations.HttpRule_Custom:
		return strings.ToUpper(p.Custom.GetKind()), p.Custom.GetPath()
	}
	return "", ""
}

func keys(c openapi3.Content) []string {
	var ks []string
	for k := range c {
		ks = append(ks, k)
	}
	return ks
}

func TestParseTemplate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		path string
		vars []variable
		err  string
	}{
		{in: "/v1/nodes", path: "/v1/nodes"},
		{in: "/v1/nodes/{name}", path: "/v1/nodes/{name}", vars: []variable{{Field: "name"}}},
		{in: "/v1/nodes/{name=*}", path: "/v1/nodes/{name}", vars: []variable{{Field: "name"}}},
		{in: "/v1/workflows/{id}:watch", path: "/v1/workflows/{id}:watch", vars: []variable{{Field: "id"}}},
		{in: "/v1/workflows:plan", path: "/v1/workflows:plan"},
		{in: "/v1/nodes/{node}/etcd-snapshots", path: "/v1/nodes/{node}/etcd-snapshots", vars: []variable{{Field: "node"}}},
		{in: "/v1/{parent.name}/x/{id}", path: "/v1/{parent.name}/x/{id}", vars: []variable{{Field: "parent.name"}, {Field: "id"}}},
		{in: "/v1/{name=projects/*/nodes/*}:get", path: "/v1/{name}:get", vars: []variable{{Field: "name", Pattern: "projects/*/nodes/*"}}},
		{in: "/v1/{name=files/**}", path: "/v1/{name}", vars: []variable{{Field: "name", Pattern: "files/**"}}},
		{in: "/v1/a:b/c", path: "/v1/a:b/c"},
		{in: "v1/nodes", err: "does not start with /"},
		{in: "/v1/{name", err: "{ without }"},
		{in: "/v1/name}", err: "} without {"},
		{in: "/v1/{a={b}}", err: "a variable inside a variable"},
		{in: "/v1//nodes", err: "empty segment"},
		{in: "/v1/nodes/", err: "empty segment"},
		{in: "/v1/*", err: "wildcard * outside a variable"},
		{in: "/v1/**/x", err: "wildcard ** outside a variable"},
		{in: "/v1/{}", err: `bad field path ""`},
		{in: "/v1/{a..b}", err: `bad field path "a..b"`},
		{in: "/v1/{1a}", err: `bad field path "1a"`},
		{in: "/v1/{a}/{a}", err: "{a} twice"},
		{in: "/v1/x{a}", err: "is not a whole segment"},
		{in: "/v1/{a}x", err: "is not a whole segment"},
		{in: "/v1/x:", err: `bad verb ""`},
		{in: "/v1/{a}:b:c", err: "is not a whole segment"},
	} {
		got, err := parseTemplate(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseTemplate(%q) = %+v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseTemplate(%q): %v", tc.in, err)
			continue
		}
		if got.Path != tc.path || !equalVars(got.Vars, tc.vars) {
			t.Errorf("parseTemplate(%q) = %+v, want path %s vars %+v", tc.in, got, tc.path, tc.vars)
		}
	}
}

func equalVars(a, b []variable) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBlankVariables(t *testing.T) {
	for in, want := range map[string]string{
		"/v1/nodes":              "/v1/nodes",
		"/v1/nodes/{name}":       "/v1/nodes/{}",
		"/v1/{a.b}/x/{id}:watch": "/v1/{}/x/{}:watch",
	} {
		if got := blankVariables(in); got != want {
			t.Errorf("blankVariables(%q) = %q, want %q", in, got, want)
		}
	}
}

// testFile is a message with a field of every shape, built in the test so the mapping is
// checked without the product's protos.
func testFile(t *testing.T) protoreflect.FileDescriptor {
	t.Helper()
	type F = descriptorpb.FieldDescriptorProto
	field := func(name string, n int32, typ descriptorpb.FieldDescriptorProto_Type, typeName string, repeated bool) *F {
		f := &F{Name: proto.String(name), Number: proto.Int32(n), Type: typ.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		if repeated {
			f.Label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
		}
		return f
	}
	const (
		msg  = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
		str  = descriptorpb.FieldDescriptorProto_TYPE_STRING
		enum = descriptorpb.FieldDescriptorProto_TYPE_ENUM
	)
	scalars := []struct {
		name string
		typ  descriptorpb.FieldDescriptorProto_Type
	}{
		{"a_bool", descriptorpb.FieldDescriptorProto_TYPE_BOOL},
		{"an_int32", descriptorpb.FieldDescriptorProto_TYPE_INT32},
		{"a_sint32", descriptorpb.FieldDescriptorProto_TYPE_SINT32},
		{"a_sfixed32", descriptorpb.FieldDescriptorProto_TYPE_SFIXED32},
		{"a_uint32", descriptorpb.FieldDescriptorProto_TYPE_UINT32},
		{"a_fixed32", descriptorpb.FieldDescriptorProto_TYPE_FIXED32},
		{"an_int64", descriptorpb.FieldDescriptorProto_TYPE_INT64},
		{"a_sint64", descriptorpb.FieldDescriptorProto_TYPE_SINT64},
		{"a_sfixed64", descriptorpb.FieldDescriptorProto_TYPE_SFIXED64},
		{"a_uint64", descriptorpb.FieldDescriptorProto_TYPE_UINT64},
		{"a_fixed64", descriptorpb.FieldDescriptorProto_TYPE_FIXED64},
		{"a_float", descriptorpb.FieldDescriptorProto_TYPE_FLOAT},
		{"a_double", descriptorpb.FieldDescriptorProto_TYPE_DOUBLE},
		{"a_string", str},
		{"some_bytes", descriptorpb.FieldDescriptorProto_TYPE_BYTES},
	}
	var fields []*F
	for i, s := range scalars {
		fields = append(fields, field(s.name, int32(i+1), s.typ, "", false))
	}
	wkts := []string{"Timestamp", "Duration", "Struct", "Value", "ListValue", "Any", "FieldMask", "Empty",
		"BoolValue", "Int32Value", "UInt32Value", "Int64Value", "UInt64Value", "FloatValue", "DoubleValue", "StringValue", "BytesValue"}
	for i, w := range wkts {
		fields = append(fields, field("wkt_"+strings.ToLower(w), int32(100+i), msg, ".google.protobuf."+w, false))
	}
	fields = append(fields,
		field("color", 200, enum, ".test.Color", false),
		field("child", 201, msg, ".test.M", false),
		field("names", 202, str, "", true),
		field("children", 203, msg, ".test.M", true),
		field("labels", 204, msg, ".test.M.LabelsEntry", true),
		field("by_name", 205, msg, ".test.M.ByNameEntry", true),
		field("custom", 206, str, "", false),
	)
	fields[len(fields)-1].JsonName = proto.String("renamed")
	entry := func(name, valueType string, typ descriptorpb.FieldDescriptorProto_Type) *descriptorpb.DescriptorProto {
		return &descriptorpb.DescriptorProto{
			Name:    proto.String(name),
			Field:   []*F{field("key", 1, str, "", false), field("value", 2, typ, valueType, false)},
			Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
		}
	}
	var deps []string
	for _, f := range []protoreflect.FileDescriptor{timestamppb.File_google_protobuf_timestamp_proto, durationpb.File_google_protobuf_duration_proto,
		structpb.File_google_protobuf_struct_proto, anypb.File_google_protobuf_any_proto, fieldmaskpb.File_google_protobuf_field_mask_proto,
		emptypb.File_google_protobuf_empty_proto, wrapperspb.File_google_protobuf_wrappers_proto} {
		deps = append(deps, f.Path())
	}
	fdp := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("test/test.proto"),
		Package:    proto.String("test"),
		Syntax:     proto.String("proto3"),
		Dependency: deps,
		EnumType: []*descriptorpb.EnumDescriptorProto{{
			Name: proto.String("Color"),
			Value: []*descriptorpb.EnumValueDescriptorProto{
				{Name: proto.String("COLOR_UNSPECIFIED"), Number: proto.Int32(0)},
				{Name: proto.String("COLOR_RED"), Number: proto.Int32(1)},
			},
		}},
		MessageType: []*descriptorpb.DescriptorProto{{
			Name:       proto.String("M"),
			Field:      fields,
			NestedType: []*descriptorpb.DescriptorProto{entry("LabelsEntry", "", str), entry("ByNameEntry", ".test.M", msg)},
		}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

func TestFieldSchema(t *testing.T) {
	md := testFile(t).Messages().ByName("M")
	g := &generator{schemas: object{}}
	for _, tc := range []struct{ field, want string }{
		{"a_bool", `{"type":"boolean"}`},
		{"an_int32", `{"format":"int32","type":"integer"}`},
		{"a_sint32", `{"format":"int32","type":"integer"}`},
		{"a_sfixed32", `{"format":"int32","type":"integer"}`},
		{"a_uint32", `{"format":"int64","maximum":4294967295,"minimum":0,"type":"integer"}`},
		{"a_fixed32", `{"format":"int64","maximum":4294967295,"minimum":0,"type":"integer"}`},
		{"an_int64", `{"format":"int64","type":"string"}`},
		{"a_sint64", `{"format":"int64","type":"string"}`},
		{"a_sfixed64", `{"format":"int64","type":"string"}`},
		{"a_uint64", `{"format":"int64","type":"string"}`},
		{"a_fixed64", `{"format":"int64","type":"string"}`},
		{"a_float", `{"format":"float","type":"number"}`},
		{"a_double", `{"format":"double","type":"number"}`},
		{"a_string", `{"type":"string"}`},
		{"some_bytes", `{"format":"byte","type":"string"}`},
		{"wkt_timestamp", `{"format":"date-time","type":"string"}`},
		{"wkt_duration", `{"example":"3.5s","pattern":"^-?[0-9]+(\\.[0-9]{1,9})?s$","type":"string"}`},
		{"wkt_struct", `{"additionalProperties":true,"type":"object"}`},
		{"wkt_value", `{"nullable":true}`},
		{"wkt_listvalue", `{"items":{"nullable":true},"type":"array"}`},
		{"wkt_any", `{"additionalProperties":true,"properties":{"@type":{"type":"string"}},"type":"object"}`},
		{"wkt_fieldmask", `{"example":"spec,state","type":"string"}`},
		{"wkt_empty", `{"type":"object"}`},
		{"wkt_boolvalue", `{"type":"boolean"}`},
		{"wkt_int32value", `{"format":"int32","type":"integer"}`},
		{"wkt_uint32value", `{"format":"int64","maximum":4294967295,"minimum":0,"type":"integer"}`},
		{"wkt_int64value", `{"format":"int64","type":"string"}`},
		{"wkt_uint64value", `{"format":"int64","type":"string"}`},
		{"wkt_floatvalue", `{"format":"float","type":"number"}`},
		{"wkt_doublevalue", `{"format":"double","type":"number"}`},
		{"wkt_stringvalue", `{"type":"string"}`},
		{"wkt_bytesvalue", `{"format":"byte","type":"string"}`},
		{"color", `{"$ref":"#/components/schemas/test.Color"}`},
		{"child", `{"$ref":"#/components/schemas/test.M"}`},
		{"names", `{"items":{"type":"string"},"type":"array"}`},
		{"children", `{"items":{"$ref":"#/components/schemas/test.M"},"type":"array"}`},
		{"labels", `{"additionalProperties":{"type":"string"},"type":"object"}`},
		{"by_name", `{"additionalProperties":{"$ref":"#/components/schemas/test.M"},"type":"object"}`},
	} {
		fd := md.Fields().ByName(protoreflect.Name(tc.field))
		if fd == nil {
			t.Fatalf("no field %s", tc.field)
		}
		got, err := json.Marshal(g.fieldSchema(fd))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("%s: %s, want %s", tc.field, got, tc.want)
		}
	}

	// The referenced message and enum are in components, in protojson form.
	enum, _ := json.Marshal(g.schemas["test.Color"])
	if want := `{"enum":["COLOR_UNSPECIFIED","COLOR_RED"],"type":"string"}`; string(enum) != want {
		t.Errorf("test.Color: %s, want %s", enum, want)
	}
	m, _ := g.schemas["test.M"].(object)
	props, _ := m["properties"].(object)
	if props == nil {
		t.Fatalf("test.M: %v", g.schemas["test.M"])
	}
	for _, name := range []string{"aBool", "anInt32", "wktTimestamp", "byName", "renamed"} {
		if props[name] == nil {
			t.Errorf("test.M has no property %s (lowerCamelCase or json_name): %v", name, keysOf(props))
		}
	}
	if props["custom"] != nil || props["by_name"] != nil {
		t.Errorf("test.M uses proto names for properties: %v", keysOf(props))
	}
}

func keysOf(o object) []string {
	var ks []string
	for k := range o {
		ks = append(ks, k)
	}
	return ks
}

func TestQueryable(t *testing.T) {
	md := testFile(t).Messages().ByName("M")
	for field, want := range map[string]bool{
		"a_bool": true, "an_int64": true, "some_bytes": true, "color": true, "names": true,
		"wkt_timestamp": true, "wkt_duration": true, "wkt_int64value": true, "wkt_fieldmask": true,
		"child": false, "children": false, "labels": false, "wkt_struct": false, "wkt_listvalue": false, "wkt_any": false, "wkt_empty": false,
	} {
		if got := queryable(md.Fields().ByName(protoreflect.Name(field))); got != want {
			t.Errorf("queryable(%s) = %v, want %v", field, got, want)
		}
	}
}

func TestSplitComment(t *testing.T) {
	for _, tc := range []struct{ in, summary, description string }{
		{"", "", ""},
		{"GetNode returns a node.", "GetNode returns a node.", ""},
		{"GetNode returns\na node.", "GetNode returns a node.", ""},
		{"Pause stops. Resume goes on.", "Pause stops.", "Pause stops. Resume goes on."},
		{"Watch streams (e.g. task events). Then ends.", "Watch streams (e.g. task events).", "Watch streams (e.g. task events). Then ends."},
		{"First paragraph\nwraps.\n\nSecond one.", "First paragraph wraps.", "First paragraph\nwraps.\n\nSecond one."},
		{"No full stop", "No full stop", ""},
	} {
		s, d := splitComment(tc.in)
		if s != tc.summary || d != tc.description {
			t.Errorf("splitComment(%q) = %q, %q; want %q, %q", tc.in, s, d, tc.summary, tc.description)
		}
	}
}

// request is a CodeGeneratorRequest for test/test.proto with one service whose methods have
// the given rules.
func request(t *testing.T, rules map[string]*annotations.HttpRule) *pluginpb.CodeGeneratorRequest {
	t.Helper()
	fdp := protodesc.ToFileDescriptorProto(testFile(t))
	svc := &descriptorpb.ServiceDescriptorProto{Name: proto.String("S")}
	for _, name := range []string{"A", "B"} {
		opts := &descriptorpb.MethodOptions{}
		if r := rules[name]; r != nil {
			proto.SetExtension(opts, annotations.E_Http, r)
		}
		svc.Method = append(svc.Method, &descriptorpb.MethodDescriptorProto{
			Name: proto.String(name), InputType: proto.String(".test.M"), OutputType: proto.String(".test.M"), Options: opts,
		})
	}
	fdp.Service = []*descriptorpb.ServiceDescriptorProto{svc}
	req := &pluginpb.CodeGeneratorRequest{FileToGenerate: []string{fdp.GetName()}}
	for _, dep := range fdp.GetDependency() {
		f, err := protoregistry.GlobalFiles.FindFileByPath(dep)
		if err != nil {
			t.Fatal(err)
		}
		req.ProtoFile = append(req.ProtoFile, protodesc.ToFileDescriptorProto(f))
	}
	req.ProtoFile = append(req.ProtoFile, fdp)
	return req
}

func get(path string) *annotations.HttpRule {
	return &annotations.HttpRule{Pattern: &annotations.HttpRule_Get{Get: path}}
}

func TestGenerate(t *testing.T) {
	req := request(t, map[string]*annotations.HttpRule{
		"A": get("/v1/m/{a_string}"),
		"B": {Pattern: &annotations.HttpRule_Post{Post: "/v1/m/{a_string}:b"}, Body: "*",
			AdditionalBindings: []*annotations.HttpRule{{Pattern: &annotations.HttpRule_Put{Put: "/v1/m/{a_string}"}, Body: "child"}}},
	})
	out, err := generate(req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := generate(req)
	if err != nil || !bytes.Equal(out, again) {
		t.Fatalf("a second run differs (err %v)", err)
	}
	if !bytes.HasSuffix(out, []byte("}\n")) || !bytes.Contains(out, []byte("\n  \"components\": {\n")) {
		t.Errorf("not indented by two spaces with a trailing newline:\n%.200s", out)
	}
	doc, err := openapi3.NewLoader().LoadFromData(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("invalid document: %v", err)
	}

	a := doc.Paths.Value("/v1/m/{a_string}").Get
	if a == nil || a.OperationID != "S_A" {
		t.Fatalf("GET /v1/m/{a_string}: %+v", a)
	}
	var query []string
	for _, p := range a.Parameters {
		if p.Value.In == "path" && p.Value.Name != "a_string" {
			t.Errorf("path parameter %s", p.Value.Name)
		}
		if p.Value.In == "query" {
			query = append(query, p.Value.Name)
		}
	}
	// Scalars, enums and scalar-like well-known types in protojson names; no messages or maps;
	// not the field the path sets.
	got := strings.Join(query, " ")
	for _, want := range []string{"aBool", "anInt64", "color", "names", "wktTimestamp", "wktDuration", "wktInt64value", "renamed"} {
		if !strings.Contains(" "+got+" ", " "+want+" ") {
			t.Errorf("query parameters %s lack %s", got, want)
		}
	}
	for _, bad := range []string{"aString", "child", "children", "labels", "byName", "wktStruct", "wktAny"} {
		if strings.Contains(" "+got+" ", " "+bad+" ") {
			t.Errorf("query parameters %s have %s", got, bad)
		}
	}

	b := doc.Paths.Value("/v1/m/{a_string}:b").Post
	if b == nil || b.OperationID != "S_B" || b.RequestBody == nil {
		t.Fatalf("POST /v1/m/{a_string}:b: %+v", b)
	}
	body := b.RequestBody.Value.Content.Get("application/json").Schema.Value
	if body.Properties["aString"] != nil || body.Properties["aBool"] == nil {
		t.Errorf("body * is the request without the path's fields, got properties %v", body.Properties)
	}
	for _, p := range b.Parameters {
		if p.Value.In == "query" {
			t.Errorf("a body * operation has query parameter %s", p.Value.Name)
		}
	}
	put := doc.Paths.Value("/v1/m/{a_string}").Put
	if put == nil || put.OperationID != "S_B2" {
		t.Fatalf("the additional binding PUT /v1/m/{a_string}: %+v", put)
	}
	if ref := put.RequestBody.Value.Content.Get("application/json").Schema.Ref; ref != "#/components/schemas/test.M" {
		t.Errorf("body: child is %q, want test.M", ref)
	}
}

func TestGenerateRefusesBadRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules map[string]*annotations.HttpRule
		err   string
	}{
		{"same route twice", map[string]*annotations.HttpRule{"A": get("/v1/m"), "B": get("/v1/m")}, "GET /v1/m is already S_A"},
		{"one route, two spellings", map[string]*annotations.HttpRule{"A": get("/v1/m/{a_string}"), "B": get("/v1/m/{custom}")}, "with other variable names"},
		{"no such field", map[string]*annotations.HttpRule{"A": get("/v1/m/{nope}")}, "test.M has no field nope"},
		{"path message field", map[string]*annotations.HttpRule{"A": get("/v1/m/{child}")}, "{child} is not a scalar field"},
		{"GET body", map[string]*annotations.HttpRule{"A": {Pattern: &annotations.HttpRule_Get{Get: "/v1/m"}, Body: "*"}}, "a GET has no body"},
		{"body no field", map[string]*annotations.HttpRule{"A": {Pattern: &annotations.HttpRule_Post{Post: "/v1/m"}, Body: "nope"}}, `body "nope" is not a field`},
		{"bad template", map[string]*annotations.HttpRule{"A": get("/v1/*")}, "wildcard"},
		{"no pattern", map[string]*annotations.HttpRule{"A": {Body: "*"}}, "no HTTP method and path"},
	} {
		_, err := generate(request(t, tc.rules))
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.err)
		}
	}
}

// TestRun speaks the plugin protocol: the document as openapi.json, an error in the response.
func TestRun(t *testing.T) {
	for _, tc := range []struct {
		rules map[string]*annotations.HttpRule
		err   bool
	}{
		{map[string]*annotations.HttpRule{"A": get("/v1/m")}, false},
		{map[string]*annotations.HttpRule{"A": get("/v1/*")}, true},
	} {
		in, err := proto.Marshal(request(t, tc.rules))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := run(bytes.NewReader(in), &out); err != nil {
			t.Fatal(err)
		}
		resp := &pluginpb.CodeGeneratorResponse{}
		if err := proto.Unmarshal(out.Bytes(), resp); err != nil {
			t.Fatal(err)
		}
		if tc.err {
			if resp.GetError() == "" || len(resp.GetFile()) != 0 {
				t.Errorf("bad rule: response %v, want an error and no file", resp)
			}
			continue
		}
		if resp.GetError() != "" || len(resp.GetFile()) != 1 || resp.GetFile()[0].GetName() != "openapi.json" {
			t.Errorf("response %v, want openapi.json", resp)
		}
		if resp.GetSupportedFeatures()&uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL) == 0 {
			t.Error("proto3 optional is not declared supported")
		}
	}
}
