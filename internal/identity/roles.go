package identity

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dicomshield/dicomshield/internal/policy"
)

// Role is a named set of rights given to a user. A user's rights are
// always intersected with those of the peer (device) it connects through:
// a role never lets a user do what the peer may not.
type Role string

// The roles. They are few on purpose: each matches a kind of person or
// device at a clinic, and a user has one.
const (
	// RoleModality sends images: C-ECHO and C-STORE. It cannot see what
	// the archive holds.
	RoleModality Role = "modality"
	// RoleViewer looks at images: C-ECHO, C-FIND and C-GET over its own
	// association. It cannot add or alter images.
	RoleViewer Role = "viewer"
	// RoleReader is a reading workstation: a viewer that may also have
	// studies sent to a registered destination with C-MOVE.
	RoleReader Role = "reader"
	// RoleAdmin may do everything the peer may.
	RoleAdmin Role = "admin"
)

// AllRoles lists the roles in the order they are documented.
var AllRoles = []Role{RoleModality, RoleViewer, RoleReader, RoleAdmin}

var roleRights = map[Role][]policy.Right{
	RoleModality: {policy.RightEcho, policy.RightStore},
	RoleViewer:   {policy.RightEcho, policy.RightFind, policy.RightGet},
	RoleReader:   {policy.RightEcho, policy.RightFind, policy.RightGet, policy.RightMove},
	RoleAdmin:    policy.AllRights,
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { _, ok := roleRights[r]; return ok }

// Rights returns the rights of role r (none for an unknown role).
func (r Role) Rights() []policy.Right { return slices.Clone(roleRights[r]) }

// ParseRole parses a role name; case and surrounding spaces are ignored.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if !r.Valid() {
		return "", fmt.Errorf("%w: %q; the roles are %s", ErrUnknownRole, s, RoleNames())
	}
	return r, nil
}

// RoleNames lists the roles for messages: "modality, viewer, reader, admin".
func RoleNames() string {
	ss := make([]string, len(AllRoles))
	for i, r := range AllRoles {
		ss[i] = string(r)
	}
	return strings.Join(ss, ", ")
}

// RightsOf returns the union of the rights of roles, in canonical order;
// unknown roles grant nothing.
func RightsOf(roles []Role) []policy.Right {
	var out []policy.Right
	for _, r := range policy.AllRights {
		for _, role := range roles {
			if slices.Contains(roleRights[role], r) {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// Intersect returns the rights in both a and b, in canonical order.
func Intersect(a, b []policy.Right) []policy.Right {
	out := []policy.Right{}
	for _, r := range policy.AllRights {
		if slices.Contains(a, r) && slices.Contains(b, r) {
			out = append(out, r)
		}
	}
	return out
}
