package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
)

// ErrInvalidMessage is wrapped by Check's errors.
var ErrInvalidMessage = errors.New("audit: invalid audit message")

// Checked is what Check read from a valid message, for assertions and
// for tools that read a collector's records.
type Checked struct {
	EventID      string // csd-code of EventID
	EventTypes   []string
	ActionCode   string
	Outcome      int
	Participants []CheckedParticipant
	Objects      []CheckedObject
	SourceID     string
}

// CheckedParticipant is one ActiveParticipant.
type CheckedParticipant struct {
	UserID, AlternativeUserID, NetworkAccessPointID string
	Requestor                                       bool
	Roles                                           []string // csd-codes
}

// CheckedObject is one ParticipantObjectIdentification.
type CheckedObject struct {
	ID, TypeCode, Role, IDType string
	Query                      []byte            // decoded ParticipantObjectQuery
	Details                    map[string]string // type -> decoded value
	SOPClasses                 map[string]int    // UID -> NumberOfInstances
}

// node is a parsed element.
type node struct {
	name     string
	attrs    map[string]string
	children []*node
	text     string
}

// Check parses an audit message and checks it against what the schema of
// PS3.15 A.5.1 requires: the elements in their order and number, every
// mandatory attribute, the enumerated values, coded values complete,
// base64 where the schema says xsd:base64Binary, and no element or
// attribute the schema does not define.
func Check(b []byte) (*Checked, error) {
	root, err := parseXML(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	c := &Checked{}
	if err := checkMessage(root, c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	return c, nil
}

func parseXML(b []byte) (*node, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	var stack []*node
	var root *node
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &node{name: t.Name.Local, attrs: map[string]string{}}
			if t.Name.Space != "" {
				return nil, fmt.Errorf("element %s in namespace %q", t.Name.Local, t.Name.Space)
			}
			for _, a := range t.Attr {
				if _, dup := n.attrs[a.Name.Local]; dup {
					return nil, fmt.Errorf("%s: attribute %s twice", n.name, a.Name.Local)
				}
				n.attrs[a.Name.Local] = a.Value
			}
			if len(stack) == 0 {
				if root != nil {
					return nil, errors.New("more than one root element")
				}
				root = n
			} else {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(t)
			} else if len(bytes.TrimSpace(t)) > 0 {
				return nil, errors.New("text outside the root element")
			}
		}
	}
	if root == nil {
		return nil, errors.New("no root element")
	}
	return root, nil
}

// attrSpec says which attributes an element may have: required ones,
// and for enumerated ones their values.
type attrSpec struct {
	required bool
	values   []string // nil: any token
	check    func(string) error
}

func checkAttrs(n *node, spec map[string]attrSpec) error {
	for name := range n.attrs {
		if _, ok := spec[name]; !ok {
			return fmt.Errorf("%s: attribute %s is not in the schema", n.name, name)
		}
	}
	for _, name := range sortedSpec(spec) {
		s := spec[name]
		v, ok := n.attrs[name]
		if !ok {
			if s.required {
				return fmt.Errorf("%s: required attribute %s missing", n.name, name)
			}
			continue
		}
		if s.values != nil && !slices.Contains(s.values, v) {
			return fmt.Errorf("%s: %s=%q is not one of %v", n.name, name, v, s.values)
		}
		if s.check != nil {
			if err := s.check(v); err != nil {
				return fmt.Errorf("%s: %s=%q: %v", n.name, name, v, err)
			}
		}
		if s.values == nil && s.check == nil && s.required && v == "" {
			return fmt.Errorf("%s: attribute %s is empty", n.name, name)
		}
	}
	return nil
}

func sortedSpec(m map[string]attrSpec) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// sequence checks that n's children follow the pattern: each step an
// element name with a minimum and maximum count (-1: unbounded), in
// order. A step named "" with alternatives accepts any of them.
type step struct {
	names    []string
	min, max int
}

func one(name string) step           { return step{[]string{name}, 1, 1} }
func opt(names ...string) step       { return step{names, 0, 1} }
func many(name string, min int) step { return step{[]string{name}, min, -1} }
func sequence(n *node, steps ...step) error {
	i := 0
	for _, s := range steps {
		count := 0
		for i < len(n.children) && slices.Contains(s.names, n.children[i].name) && (s.max < 0 || count < s.max) {
			i++
			count++
		}
		if count < s.min {
			return fmt.Errorf("%s: expected %v (at least %d) at child %d", n.name, s.names, s.min, i+1)
		}
	}
	if i < len(n.children) {
		return fmt.Errorf("%s: element %s is not allowed there by the schema", n.name, n.children[i].name)
	}
	return nil
}

func checkCoded(n *node) (string, error) {
	err := checkAttrs(n, map[string]attrSpec{
		"csd-code": {required: true}, "codeSystemName": {required: true},
		"originalText": {required: true}, "displayName": {},
	})
	if err == nil {
		err = sequence(n)
	}
	return n.attrs["csd-code"], err
}

func isBool(v string) error {
	switch v {
	case "true", "false", "1", "0":
		return nil
	}
	return errors.New("not an xsd:boolean")
}

func isInt(v string) error {
	_, err := strconv.ParseInt(v, 10, 64)
	return err
}

func isDateTime(v string) error {
	_, err := time.Parse(time.RFC3339Nano, v)
	return err
}

func isBase64(v string) error {
	_, err := base64.StdEncoding.DecodeString(v)
	return err
}

func numbers(from, to int) []string {
	var s []string
	for i := from; i <= to; i++ {
		s = append(s, strconv.Itoa(i))
	}
	return s
}

func checkMessage(root *node, c *Checked) error {
	if root.name != "AuditMessage" {
		return fmt.Errorf("root element is %s, not AuditMessage", root.name)
	}
	if err := checkAttrs(root, map[string]attrSpec{}); err != nil {
		return err
	}
	if err := sequence(root, one("EventIdentification"), many("ActiveParticipant", 1), one("AuditSourceIdentification"),
		many("ParticipantObjectIdentification", 0)); err != nil {
		return err
	}
	for _, ch := range root.children {
		var err error
		switch ch.name {
		case "EventIdentification":
			err = checkEvent(ch, c)
		case "ActiveParticipant":
			err = checkParticipant(ch, c)
		case "AuditSourceIdentification":
			err = checkSource(ch, c)
		case "ParticipantObjectIdentification":
			err = checkObject(ch, c)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func checkEvent(n *node, c *Checked) error {
	if err := checkAttrs(n, map[string]attrSpec{
		"EventActionCode":       {values: []string{"C", "R", "U", "D", "E"}},
		"EventDateTime":         {required: true, check: isDateTime},
		"EventOutcomeIndicator": {required: true, values: []string{"0", "4", "8", "12"}},
	}); err != nil {
		return err
	}
	if err := sequence(n, one("EventID"), many("EventTypeCode", 0), opt("EventOutcomeDescription")); err != nil {
		return err
	}
	c.ActionCode = n.attrs["EventActionCode"]
	c.Outcome, _ = strconv.Atoi(n.attrs["EventOutcomeIndicator"])
	for _, ch := range n.children {
		switch ch.name {
		case "EventID", "EventTypeCode":
			code, err := checkCoded(ch)
			if err != nil {
				return err
			}
			if ch.name == "EventID" {
				c.EventID = code
			} else {
				c.EventTypes = append(c.EventTypes, code)
			}
		case "EventOutcomeDescription":
			if err := sequence(ch); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkParticipant(n *node, c *Checked) error {
	if err := checkAttrs(n, map[string]attrSpec{
		"UserID": {required: true}, "AlternativeUserID": {}, "UserName": {},
		"UserIsRequestor":            {required: true, check: isBool},
		"NetworkAccessPointID":       {},
		"NetworkAccessPointTypeCode": {values: numbers(1, 5)},
	}); err != nil {
		return err
	}
	if err := sequence(n, many("RoleIDCode", 0), opt("MediaIdentifier")); err != nil {
		return err
	}
	p := CheckedParticipant{UserID: n.attrs["UserID"], AlternativeUserID: n.attrs["AlternativeUserID"],
		NetworkAccessPointID: n.attrs["NetworkAccessPointID"]}
	p.Requestor = n.attrs["UserIsRequestor"] == "true" || n.attrs["UserIsRequestor"] == "1"
	for _, ch := range n.children {
		if ch.name == "MediaIdentifier" {
			if err := sequence(ch, one("MediaType")); err != nil {
				return err
			}
			if _, err := checkCoded(ch.children[0]); err != nil {
				return err
			}
			continue
		}
		code, err := checkCoded(ch)
		if err != nil {
			return err
		}
		p.Roles = append(p.Roles, code)
	}
	c.Participants = append(c.Participants, p)
	return nil
}

func checkSource(n *node, c *Checked) error {
	if err := checkAttrs(n, map[string]attrSpec{"AuditEnterpriseSiteID": {}, "AuditSourceID": {required: true}}); err != nil {
		return err
	}
	if err := sequence(n, many("AuditSourceTypeCode", 0)); err != nil {
		return err
	}
	for _, ch := range n.children {
		if err := checkAttrs(ch, map[string]attrSpec{"csd-code": {required: true}, "codeSystemName": {}, "originalText": {}, "displayName": {}}); err != nil {
			return err
		}
		if code := ch.attrs["csd-code"]; !slices.Contains(numbers(1, 9), code) && ch.attrs["codeSystemName"] == "" {
			return fmt.Errorf("AuditSourceTypeCode %q is not 1 to 9 and has no codeSystemName", code)
		}
	}
	c.SourceID = n.attrs["AuditSourceID"]
	return nil
}

func checkObject(n *node, c *Checked) error {
	if err := checkAttrs(n, map[string]attrSpec{
		"ParticipantObjectID":            {required: true},
		"ParticipantObjectTypeCode":      {values: numbers(1, 4)},
		"ParticipantObjectTypeCodeRole":  {values: numbers(1, 26)},
		"ParticipantObjectDataLifeCycle": {values: numbers(1, 15)},
		"ParticipantObjectSensitivity":   {},
	}); err != nil {
		return err
	}
	if err := sequence(n, one("ParticipantObjectIDTypeCode"), opt("ParticipantObjectName", "ParticipantObjectQuery"),
		many("ParticipantObjectDetail", 0), many("ParticipantObjectDescription", 0)); err != nil {
		return err
	}
	o := CheckedObject{ID: n.attrs["ParticipantObjectID"], TypeCode: n.attrs["ParticipantObjectTypeCode"],
		Role: n.attrs["ParticipantObjectTypeCodeRole"], Details: map[string]string{}, SOPClasses: map[string]int{}}
	for _, ch := range n.children {
		switch ch.name {
		case "ParticipantObjectIDTypeCode":
			code, err := checkCoded(ch)
			if err != nil {
				return err
			}
			o.IDType = code
		case "ParticipantObjectName":
			if err := sequence(ch); err != nil {
				return err
			}
		case "ParticipantObjectQuery":
			q, err := base64.StdEncoding.DecodeString(ch.text)
			if err != nil {
				return fmt.Errorf("ParticipantObjectQuery is not base64: %v", err)
			}
			o.Query = q
		case "ParticipantObjectDetail":
			if err := checkAttrs(ch, map[string]attrSpec{"type": {required: true}, "value": {required: true, check: isBase64}}); err != nil {
				return err
			}
			v, _ := base64.StdEncoding.DecodeString(ch.attrs["value"])
			o.Details[ch.attrs["type"]] = string(v)
		case "ParticipantObjectDescription":
			if err := checkDescription(ch, &o); err != nil {
				return err
			}
		}
	}
	c.Objects = append(c.Objects, o)
	return nil
}

func checkDescription(n *node, o *CheckedObject) error {
	if err := sequence(n, many("MPPS", 0), many("Accession", 0), many("SOPClass", 0),
		opt("ParticipantObjectContainsStudy"), opt("Encrypted"), opt("Anonymized")); err != nil {
		return err
	}
	for _, ch := range n.children {
		var err error
		switch ch.name {
		case "MPPS":
			err = checkAttrs(ch, map[string]attrSpec{"UID": {required: true}})
		case "Accession":
			err = checkAttrs(ch, map[string]attrSpec{"Number": {required: true}})
		case "SOPClass":
			if err = checkAttrs(ch, map[string]attrSpec{"UID": {}, "NumberOfInstances": {required: true, check: isInt}}); err == nil {
				err = sequence(ch, many("Instance", 0))
			}
			n, _ := strconv.Atoi(ch.attrs["NumberOfInstances"])
			o.SOPClasses[ch.attrs["UID"]] = n
		case "Encrypted", "Anonymized":
			err = isBool(ch.text)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
