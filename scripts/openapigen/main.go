// Command protoc-gen-deckhand-openapi is the protoc plugin that describes Deckhand's REST
// gateway: it reads the google.api.http rules of the files buf generates and writes one
// OpenAPI 3.0.3 document, openapi.json, which controller/rest serves at /openapi.json.
//
// The document says what grpc-gateway v2 does with those rules: path parameters from the
// URL templates, the other scalar fields of a request without a body as query parameters,
// messages in their protojson form (lowerCamelCase names, 64-bit integers as strings, enums
// by name), server streams as newline-delimited JSON. It knows only the descriptors in the
// request; it imports nothing of Deckhand's. scripts/generate.sh builds and runs it.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

const (
	openAPIVersion = "3.0.3"
	outputName     = "openapi.json"

	// The schemas of errors, written here: google/rpc is not among the generated files.
	statusSchema    = "google.rpc.Status"
	errorInfoSchema = "google.rpc.ErrorInfo"
	// ErrorInfo.reason is a name of this enum when the request's files declare it.
	errorReasonEnum = "deckhand.api.v1.ErrorReason"

	jsonType   = "application/json"
	ndjsonType = "application/x-ndjson"
)

const apiDescription = `Deckhand's public API as REST/JSON: the gRPC services of package deckhand.api.v1, served by
every controller replica beside gRPC on its TLS port (grpc-gateway v2). The methods, messages
and semantics are the gRPC ones; messages are in their protojson form (lowerCamelCase field
names, 64-bit integers as strings, enums by value name, google.protobuf.Timestamp as RFC 3339,
google.protobuf.Duration as seconds with an "s" suffix).

**Authentication.** Every call needs mutual TLS with a Deckhand credential: present the client
certificate and key from the credential file (the deckctl config that
CredentialService.CreateCredential issues) and verify the server against the controller CA in
it. The role of the certificate (admin, operator or viewer) is enforced per method exactly as
over gRPC: a method the role may not call fails with PERMISSION_DENIED (HTTP 403) and reason
ERROR_REASON_PERMISSION_DENIED.

**Errors.** A failed call answers with the HTTP status mapped from its gRPC code and a
google.rpc.Status JSON body. Errors from the controller carry a google.rpc.ErrorInfo detail
(domain "deckhand.dev") whose reason is a deckhand.api.v1.ErrorReason name: switch on the
reason, never on the message text. An error the gateway makes before the call (a body or a
query that does not parse) may have no details.

**Streams.** A server-streaming method answers with newline-delimited JSON
(application/x-ndjson), one object per line: ` + "`" + `{"result": <response message>}` + "`" + ` for each
message, ` + "`" + `{"error": <google.rpc.Status>}` + "`" + ` when the stream fails.`

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "protoc-gen-deckhand-openapi: %v\n", err)
		os.Exit(1)
	}
}

// run answers one CodeGeneratorRequest. A document that cannot be made is reported in the
// response, as the plugin protocol asks; only I/O failures are returned.
func run(r io.Reader, w io.Writer) error {
	in, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	req := &pluginpb.CodeGeneratorRequest{}
	if err := proto.Unmarshal(in, req); err != nil {
		return fmt.Errorf("decode request: %w", err)
	}
	resp := &pluginpb.CodeGeneratorResponse{
		SupportedFeatures: proto.Uint64(uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL)),
	}
	if content, err := generate(req); err != nil {
		resp.Error = proto.String(err.Error())
	} else {
		resp.File = []*pluginpb.CodeGeneratorResponse_File{{Name: proto.String(outputName), Content: proto.String(string(content))}}
	}
	out, err := proto.Marshal(resp)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	_, err = w.Write(out)
	return err
}

// object is a JSON object of the document; encoding/json writes its keys sorted, which is
// what makes the output deterministic.
type object = map[string]any

// generate makes the document for the files to generate: one operation per HTTP rule of
// their methods.
func generate(req *pluginpb.CodeGeneratorRequest) ([]byte, error) {
	files, err := protodesc.NewFiles(&descriptorpb.FileDescriptorSet{File: req.GetProtoFile()})
	if err != nil {
		return nil, fmt.Errorf("read descriptors: %w", err)
	}
	g := &generator{files: files, schemas: object{}, paths: map[string]object{}, templates: map[string]string{}}
	var tags []any
	for _, name := range slices.Sorted(slices.Values(req.GetFileToGenerate())) {
		fd, err := files.FindFileByPath(name)
		if err != nil {
			return nil, fmt.Errorf("file to generate %s: %w", name, err)
		}
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			n, err := g.addService(sd)
			if err != nil {
				return nil, err
			}
			if n > 0 {
				tags = append(tags, withDescription(object{"name": string(sd.Name())}, comment(sd)))
			}
		}
	}
	slices.SortFunc(tags, func(a, b any) int { return strings.Compare(a.(object)["name"].(string), b.(object)["name"].(string)) })
	g.addErrorSchemas()

	paths := object{}
	for p, item := range g.paths {
		paths[p] = item
	}
	doc := object{
		"openapi": openAPIVersion,
		"info": object{
			"title":       "Deckhand API",
			"version":     "v1",
			"description": apiDescription,
		},
		"paths":      paths,
		"components": object{"schemas": g.schemas},
	}
	if len(tags) > 0 {
		doc["tags"] = tags
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode document: %w", err)
	}
	return buf.Bytes(), nil
}

// generator collects the paths and the schemas they reach.
type generator struct {
	files interface {
		FindDescriptorByName(protoreflect.FullName) (protoreflect.Descriptor, error)
	}
	// schemas is components/schemas by full proto name; a name is present (nil) while its
	// schema is being made, so recursive messages end.
	schemas object
	// paths is the path items by OpenAPI path; templates maps a path with its variables
	// blanked to the path that took it, to catch two spellings of one route.
	paths     map[string]object
	templates map[string]string
}

// addService adds the operations of sd's methods that have HTTP rules and returns how many.
func (g *generator) addService(sd protoreflect.ServiceDescriptor) (int, error) {
	n := 0
	for i := range sd.Methods().Len() {
		md := sd.Methods().Get(i)
		rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
		if rule == nil {
			continue
		}
		rules := append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...)
		for j, r := range rules {
			id := string(sd.Name()) + "_" + string(md.Name())
			if j > 0 {
				id += strconv.Itoa(j + 1)
			}
			if err := g.addOperation(sd, md, r, id); err != nil {
				return 0, fmt.Errorf("%s: google.api.http rule %d: %w", md.FullName(), j+1, err)
			}
			n++
		}
	}
	return n, nil
}

// binding is one HTTP rule: its method (an OpenAPI operation key), URL template and body.
type binding struct {
	method, path, body, responseBody string
}

func bindingOf(r *annotations.HttpRule) (binding, error) {
	b := binding{body: r.GetBody(), responseBody: r.GetResponseBody()}
	switch p := r.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		b.method, b.path = "get", p.Get
	case *annotations.HttpRule_Put:
		b.method, b.path = "put", p.Put
	case *annotations.HttpRule_Post:
		b.method, b.path = "post", p.Post
	case *annotations.HttpRule_Delete:
		b.method, b.path = "delete", p.Delete
	case *annotations.HttpRule_Patch:
		b.method, b.path = "patch", p.Patch
	case *annotations.HttpRule_Custom:
		b.method, b.path = strings.ToLower(p.Custom.GetKind()), p.Custom.GetPath()
		if !slices.Contains([]string{"head", "options", "trace"}, b.method) {
			return b, fmt.Errorf("custom method %q is not an HTTP method OpenAPI knows", p.Custom.GetKind())
		}
	default:
		return b, errors.New("no HTTP method and path")
	}
	if b.method == "get" && b.body != "" {
		return b, fmt.Errorf("a GET has no body, but body is %q", b.body)
	}
	return b, nil
}

// addOperation adds the operation of one rule of md.
func (g *generator) addOperation(sd protoreflect.ServiceDescriptor, md protoreflect.MethodDescriptor, r *annotations.HttpRule, id string) error {
	if md.IsStreamingClient() {
		return errors.New("client-streaming methods are not described")
	}
	b, err := bindingOf(r)
	if err != nil {
		return err
	}
	tpl, err := parseTemplate(b.path)
	if err != nil {
		return err
	}
	blank := blankVariables(tpl.Path)
	if other, ok := g.templates[blank]; ok && other != tpl.Path {
		return fmt.Errorf("path %s is %s with other variable names: one route needs one spelling", tpl.Path, other)
	}
	g.templates[blank] = tpl.Path
	item := g.paths[tpl.Path]
	if item == nil {
		item = object{}
		g.paths[tpl.Path] = item
	}
	if prev, ok := item[b.method].(object); ok {
		return fmt.Errorf("%s %s is already %s", strings.ToUpper(b.method), tpl.Path, prev["operationId"])
	}

	in, out := md.Input(), md.Output()
	var params []any
	taken := map[protoreflect.Name]bool{} // top-level request fields the path or body holds
	for _, v := range tpl.Vars {
		fd, err := fieldByPath(in, v.Field)
		if err != nil {
			return fmt.Errorf("path %s: %w", tpl.Path, err)
		}
		if !queryable(fd) || fd.IsList() {
			return fmt.Errorf("path %s: {%s} is not a scalar field", tpl.Path, v.Field)
		}
		desc := fieldDescription(fd)
		if v.Pattern != "" {
			desc = strings.TrimSpace(desc + "\n\nMatches `" + v.Pattern + "`.")
		}
		params = append(params, withDescription(object{"name": v.Field, "in": "path", "required": true, "schema": g.fieldSchema(fd)}, desc))
		if !strings.Contains(v.Field, ".") {
			taken[protoreflect.Name(v.Field)] = true
		}
	}

	op := object{"operationId": id, "tags": []any{string(sd.Name())}}
	switch b.body {
	case "*":
		op["requestBody"] = object{"content": object{jsonType: object{"schema": g.bodySchema(in, taken)}}}
	case "":
	default:
		fd := in.Fields().ByName(protoreflect.Name(b.body))
		if fd == nil {
			return fmt.Errorf("body %q is not a field of %s", b.body, in.FullName())
		}
		taken[fd.Name()] = true
		op["requestBody"] = object{"content": object{jsonType: object{"schema": withDescription(g.fieldSchema(fd), fieldDescription(fd))}}}
	}
	if b.body != "*" {
		fields := in.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if taken[fd.Name()] || !queryable(fd) {
				continue
			}
			params = append(params, withDescription(object{"name": fd.JSONName(), "in": "query", "schema": g.fieldSchema(fd)}, fieldDescription(fd)))
		}
	}
	if len(params) > 0 {
		op["parameters"] = params
	}

	result := g.messageSchema(out)
	if b.responseBody != "" {
		fd := out.Fields().ByName(protoreflect.Name(b.responseBody))
		if fd == nil {
			return fmt.Errorf("response_body %q is not a field of %s", b.responseBody, out.FullName())
		}
		result = g.fieldSchema(fd)
	}
	summary, description := splitComment(comment(md))
	errSchema := g.schemaRef(statusSchema)
	var ok object
	if md.IsStreamingServer() {
		note := fmt.Sprintf("A stream: newline-delimited JSON (application/x-ndjson, as grpc-gateway v2 writes a "+
			"server stream), one object per line, `{\"result\": <%s>}` for each message and "+
			"`{\"error\": <%s>}` as the last line when the stream fails.", out.FullName(), statusSchema)
		description = strings.TrimSpace(description + "\n\n" + note)
		ok = object{"description": note, "content": object{ndjsonType: object{"schema": object{
			"type":        "object",
			"description": "One line of the stream: result or error.",
			"properties":  object{"result": result, "error": errSchema},
		}}}}
		// An error before the first message comes with the error status and the same line.
		errSchema = object{"anyOf": []any{errSchema, object{
			"type":       "object",
			"properties": object{"error": g.schemaRef(statusSchema)},
			"required":   []any{"error"},
		}}}
	} else {
		ok = object{"description": "The " + string(out.FullName()) + ".", "content": object{jsonType: object{"schema": result}}}
	}
	failed := "The call failed: a " + statusSchema + " with a " + errorInfoSchema + " detail."
	if md.IsStreamingServer() {
		failed = "The call failed: a " + statusSchema + " with a " + errorInfoSchema + " detail, or that status as " +
			"`{\"error\": ...}` when the stream failed before its first message."
	}
	op["responses"] = object{
		"200":     ok,
		"default": object{"description": failed, "content": object{jsonType: object{"schema": errSchema}}},
	}
	withDescription(op, description)
	if summary != "" {
		op["summary"] = summary
	}
	if opts, _ := md.Options().(*descriptorpb.MethodOptions); opts.GetDeprecated() {
		op["deprecated"] = true
	}
	item[b.method] = op
	return nil
}

// bodySchema is the body of a `body: "*"` rule: the request message without the fields the
// path sets.
func (g *generator) bodySchema(md protoreflect.MessageDescriptor, taken map[protoreflect.Name]bool) object {
	if len(taken) == 0 {
		return g.messageSchema(md)
	}
	props := object{}
	fields := md.Fields()
	for i := range fields.Len() {
		if fd := fields.Get(i); !taken[fd.Name()] {
			props[fd.JSONName()] = g.property(fd)
		}
	}
	s := object{"type": "object"}
	if len(props) > 0 {
		s["properties"] = props
	}
	return withDescription(s, comment(md))
}

// fieldByPath finds a (possibly nested, a.b.c) field of md by proto names.
func fieldByPath(md protoreflect.MessageDescriptor, path string) (protoreflect.FieldDescriptor, error) {
	var fd protoreflect.FieldDescriptor
	for i, name := range strings.Split(path, ".") {
		if i > 0 {
			if fd.Message() == nil || fd.IsList() || fd.IsMap() {
				return nil, fmt.Errorf("{%s}: %s is not a message field", path, fd.Name())
			}
			md = fd.Message()
		}
		fd = md.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			return nil, fmt.Errorf("{%s}: %s has no field %s", path, md.FullName(), name)
		}
	}
	return fd, nil
}

// queryable says whether grpc-gateway fills fd from a query parameter of the same name: a
// scalar, an enum, a well-known type written as a string or number, or a list of those.
func queryable(fd protoreflect.FieldDescriptor) bool {
	if fd.IsMap() {
		return false
	}
	if md := fd.Message(); md != nil {
		s, ok := wellKnown(md.FullName())
		return ok && s["type"] != nil && s["type"] != "object" && s["type"] != "array"
	}
	return true
}

// template is a parsed google.api.http URL template.
type template struct {
	Path string     // the OpenAPI path: each variable as {field.path}, the verb kept
	Vars []variable // in the order they appear
}

// variable is one {field=pattern} of a template.
type variable struct {
	Field   string // the request field path, e.g. id or node.name
	Pattern string // what it matches when not one segment (e.g. projects/*), else ""
}

// parseTemplate parses a URL template as google/api/http.proto defines it:
//
//	Template = "/" Segments [ Verb ] ;
//	Segments = Segment { "/" Segment } ;
//	Segment  = "*" | "**" | LITERAL | Variable ;
//	Variable = "{" FieldPath [ "=" Segments ] "}" ;
//	Verb     = ":" LITERAL ;
//
// Wildcards outside a variable have no name to give an OpenAPI parameter, so they are refused.
func parseTemplate(s string) (template, error) {
	if !strings.HasPrefix(s, "/") {
		return template{}, fmt.Errorf("path %q does not start with /", s)
	}
	// Split at the slashes outside braces.
	var segs []string
	depth, start := 0, 1
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '{':
			if depth++; depth > 1 {
				return template{}, fmt.Errorf("path %q: a variable inside a variable", s)
			}
		case '}':
			if depth--; depth < 0 {
				return template{}, fmt.Errorf("path %q: } without {", s)
			}
		case '/':
			if depth == 0 {
				segs = append(segs, s[start:i])
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return template{}, fmt.Errorf("path %q: { without }", s)
	}
	segs = append(segs, s[start:])
	verb := ""
	last := segs[len(segs)-1]
	if i := strings.LastIndexByte(last, ':'); i >= 0 && i > strings.LastIndexByte(last, '}') {
		segs[len(segs)-1], verb = last[:i], last[i+1:]
		if verb == "" || strings.ContainsAny(verb, "{}*") {
			return template{}, fmt.Errorf("path %q: bad verb %q", s, verb)
		}
	}
	t := template{}
	seen := map[string]bool{}
	out := make([]string, len(segs))
	for i, seg := range segs {
		switch {
		case seg == "":
			return template{}, fmt.Errorf("path %q: empty segment", s)
		case seg == "*" || seg == "**":
			return template{}, fmt.Errorf("path %q: wildcard %s outside a variable", s, seg)
		case strings.HasPrefix(seg, "{"):
			if !strings.HasSuffix(seg, "}") {
				return template{}, fmt.Errorf("path %q: variable %s is not a whole segment", s, seg)
			}
			field, pattern, _ := strings.Cut(seg[1:len(seg)-1], "=")
			if !validFieldPath(field) {
				return template{}, fmt.Errorf("path %q: bad field path %q", s, field)
			}
			if seen[field] {
				return template{}, fmt.Errorf("path %q: {%s} twice", s, field)
			}
			seen[field] = true
			if pattern == "*" {
				pattern = ""
			}
			t.Vars = append(t.Vars, variable{Field: field, Pattern: pattern})
			out[i] = "{" + field + "}"
		case strings.ContainsAny(seg, "{}"):
			return template{}, fmt.Errorf("path %q: variable in %s is not a whole segment", s, seg)
		default:
			out[i] = seg
		}
	}
	t.Path = "/" + strings.Join(out, "/")
	if verb != "" {
		t.Path += ":" + verb
	}
	return t, nil
}

func validFieldPath(p string) bool {
	for _, name := range strings.Split(p, ".") {
		if name == "" {
			return false
		}
		for i, c := range name {
			if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
				return false
			}
		}
	}
	return true
}

// blankVariables is an OpenAPI path with its variable names removed: two paths equal here
// are one route to a server, and OpenAPI forbids them.
func blankVariables(p string) string {
	var b strings.Builder
	in := false
	for _, c := range p {
		switch {
		case c == '{':
			in = true
			b.WriteString("{}")
		case c == '}':
			in = false
		case !in:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// schemaRef refers to components/schemas/name.
func (g *generator) schemaRef(name string) object {
	return object{"$ref": "#/components/schemas/" + name}
}

// messageSchema is the schema of a message value: a well-known type's JSON form, or a
// reference to the message's schema, made on first use.
func (g *generator) messageSchema(md protoreflect.MessageDescriptor) object {
	if s, ok := wellKnown(md.FullName()); ok {
		return s
	}
	name := string(md.FullName())
	if _, ok := g.schemas[name]; !ok {
		g.schemas[name] = nil
		props := object{}
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			props[fd.JSONName()] = g.property(fd)
		}
		s := object{"type": "object"}
		if len(props) > 0 {
			s["properties"] = props
		}
		g.schemas[name] = withDescription(s, comment(md))
	}
	return g.schemaRef(name)
}

// enumSchema is a reference to an enum's schema, made on first use: its value names, each
// one's comment in the description.
func (g *generator) enumSchema(ed protoreflect.EnumDescriptor) object {
	if ed.FullName() == "google.protobuf.NullValue" {
		return object{"nullable": true, "description": "Always null."}
	}
	name := string(ed.FullName())
	if _, ok := g.schemas[name]; !ok {
		var names []any
		var lines []string
		values := ed.Values()
		for i := range values.Len() {
			v := values.Get(i)
			names = append(names, string(v.Name()))
			if c := comment(v); c != "" {
				lines = append(lines, "- `"+string(v.Name())+"`: "+strings.Join(strings.Fields(c), " "))
			}
		}
		desc := comment(ed)
		if len(lines) > 0 {
			desc = strings.TrimSpace(desc + "\n\n" + strings.Join(lines, "\n"))
		}
		g.schemas[name] = withDescription(object{"type": "string", "enum": names}, desc)
	}
	return g.schemaRef(name)
}

// property is fd's schema as a property of its message: with its comment.
func (g *generator) property(fd protoreflect.FieldDescriptor) object {
	s := withDescription(g.fieldSchema(fd), fieldDescription(fd))
	if opts, _ := fd.Options().(*descriptorpb.FieldOptions); opts.GetDeprecated() {
		if _, isRef := s["$ref"]; isRef {
			s = object{"allOf": []any{s}}
		}
		s["deprecated"] = true
	}
	return s
}

// fieldSchema maps a field to its protojson form: a list is an array, a map an object keyed
// by strings.
func (g *generator) fieldSchema(fd protoreflect.FieldDescriptor) object {
	switch {
	case fd.IsMap():
		return object{"type": "object", "additionalProperties": g.singular(fd.MapValue())}
	case fd.IsList():
		return object{"type": "array", "items": g.singular(fd)}
	default:
		return g.singular(fd)
	}
}

func (g *generator) singular(fd protoreflect.FieldDescriptor) object {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		return g.enumSchema(fd.Enum())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return g.messageSchema(fd.Message())
	default:
		return scalarSchema(fd.Kind())
	}
}

// scalarSchema is the protojson form of a scalar kind.
func scalarSchema(k protoreflect.Kind) object {
	switch k {
	case protoreflect.BoolKind:
		return object{"type": "boolean"}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return object{"type": "integer", "format": "int32"}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return object{"type": "integer", "format": "int64", "minimum": 0, "maximum": uint32(1<<32 - 1)}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return object{"type": "string", "format": "int64"}
	case protoreflect.FloatKind:
		return object{"type": "number", "format": "float"}
	case protoreflect.DoubleKind:
		return object{"type": "number", "format": "double"}
	case protoreflect.BytesKind:
		return object{"type": "string", "format": "byte"}
	default: // StringKind
		return object{"type": "string"}
	}
}

// wellKnown is the protojson form of a well-known type, written in place of a reference.
func wellKnown(name protoreflect.FullName) (object, bool) {
	switch name {
	case "google.protobuf.Timestamp":
		return object{"type": "string", "format": "date-time"}, true
	case "google.protobuf.Duration":
		return object{"type": "string", "pattern": `^-?[0-9]+(\.[0-9]{1,9})?s$`, "example": "3.5s"}, true
	case "google.protobuf.FieldMask":
		return object{"type": "string", "example": "spec,state"}, true
	case "google.protobuf.Struct":
		return object{"type": "object", "additionalProperties": true}, true
	case "google.protobuf.Value":
		return object{"nullable": true}, true
	case "google.protobuf.ListValue":
		return object{"type": "array", "items": object{"nullable": true}}, true
	case "google.protobuf.Empty":
		return object{"type": "object"}, true
	case "google.protobuf.Any":
		return object{"type": "object", "properties": object{"@type": object{"type": "string"}}, "additionalProperties": true}, true
	case "google.protobuf.BoolValue":
		return scalarSchema(protoreflect.BoolKind), true
	case "google.protobuf.Int32Value":
		return scalarSchema(protoreflect.Int32Kind), true
	case "google.protobuf.UInt32Value":
		return scalarSchema(protoreflect.Uint32Kind), true
	case "google.protobuf.Int64Value":
		return scalarSchema(protoreflect.Int64Kind), true
	case "google.protobuf.UInt64Value":
		return scalarSchema(protoreflect.Uint64Kind), true
	case "google.protobuf.FloatValue":
		return scalarSchema(protoreflect.FloatKind), true
	case "google.protobuf.DoubleValue":
		return scalarSchema(protoreflect.DoubleKind), true
	case "google.protobuf.StringValue":
		return scalarSchema(protoreflect.StringKind), true
	case "google.protobuf.BytesValue":
		return scalarSchema(protoreflect.BytesKind), true
	}
	return nil, false
}

// addErrorSchemas adds google.rpc.Status and google.rpc.ErrorInfo, whose protos are not
// among the generated files.
func (g *generator) addErrorSchemas() {
	g.schemas[statusSchema] = object{
		"type": "object",
		"description": "The error of a failed call. Errors from the controller carry a " + errorInfoSchema +
			" in details, whose reason says what failed.",
		"properties": object{
			"code":    object{"type": "integer", "format": "int32", "description": "The gRPC status code (google.rpc.Code, e.g. 5 for NOT_FOUND); the HTTP status is mapped from it."},
			"message": object{"type": "string", "description": "What failed and what to do next, for people: never match on it."},
			"details": object{
				"type":        "array",
				"description": "Typed details, each with its type URL in @type; see " + errorInfoSchema + ".",
				"items": object{
					"type":                 "object",
					"properties":           object{"@type": object{"type": "string", "example": "type.googleapis.com/" + errorInfoSchema}},
					"required":             []any{"@type"},
					"additionalProperties": true,
				},
			},
		},
	}
	reason := object{"type": "string"}
	if d, err := g.files.FindDescriptorByName(errorReasonEnum); err == nil {
		if ed, ok := d.(protoreflect.EnumDescriptor); ok {
			reason = object{"allOf": []any{g.enumSchema(ed)}}
		}
	}
	reason["description"] = "Why the call failed: a " + errorReasonEnum + " name. Clients switch on it."
	g.schemas[errorInfoSchema] = object{
		"type":        "object",
		"description": "The detail of a Deckhand error in " + statusSchema + ".details, with @type type.googleapis.com/" + errorInfoSchema + ".",
		"properties": object{
			"@type":    object{"type": "string", "example": "type.googleapis.com/" + errorInfoSchema},
			"reason":   reason,
			"domain":   object{"type": "string", "example": "deckhand.dev", "description": "deckhand.dev for Deckhand's errors."},
			"metadata": object{"type": "object", "additionalProperties": object{"type": "string"}, "description": "What the error is about, per reason (e.g. node and workflow for ERROR_REASON_NODE_LOCKED)."},
		},
	}
}

// withDescription sets s's description, wrapping a reference in allOf because OpenAPI 3.0
// ignores the siblings of $ref.
func withDescription(s object, desc string) object {
	if desc == "" {
		return s
	}
	if _, isRef := s["$ref"]; isRef {
		s = object{"allOf": []any{s}}
	}
	s["description"] = desc
	return s
}

// fieldDescription is fd's comment, with a note naming the others of its oneof.
func fieldDescription(fd protoreflect.FieldDescriptor) string {
	desc := comment(fd)
	od := fd.ContainingOneof()
	if od == nil || od.IsSynthetic() {
		return desc
	}
	var names []string
	for i := range od.Fields().Len() {
		names = append(names, "`"+od.Fields().Get(i).JSONName()+"`")
	}
	return strings.TrimSpace(desc + "\n\nAt most one of " + strings.Join(names, ", ") + " is set (oneof " + string(od.Name()) + ").")
}

// comment is d's leading comment (else its trailing one) without the comment markers'
// indentation.
func comment(d protoreflect.Descriptor) string {
	loc := d.ParentFile().SourceLocations().ByDescriptor(d)
	c := loc.LeadingComments
	if strings.TrimSpace(c) == "" {
		c = loc.TrailingComments
	}
	lines := strings.Split(c, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(strings.TrimPrefix(l, " "), " \t")
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// splitComment makes an operation's summary of the first sentence of a comment; the
// description is the whole comment when it says more than that.
func splitComment(c string) (summary, description string) {
	para, _, _ := strings.Cut(c, "\n\n")
	para = strings.Join(strings.Fields(para), " ")
	summary = para
	for i := 0; i < len(para); {
		j := strings.Index(para[i:], ". ")
		if j < 0 {
			break
		}
		end := i + j + 1
		words := strings.Fields(para[:end])
		if w := words[len(words)-1]; w != "e.g." && w != "i.e." && w != "(e.g." && w != "(i.e." {
			summary = para[:end]
			break
		}
		i = end
	}
	if summary != strings.Join(strings.Fields(c), " ") {
		description = c
	}
	return summary, description
}
