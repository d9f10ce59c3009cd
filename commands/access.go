package commands

import (
	"context"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

// Access says who may do what, and where: chat user ids or user-group ids (a
// group id starts with "S", as Slack's do), and channel ids or name patterns
// (path.Match syntax, e.g. "inc-*").
type Access struct {
	Responders []string
	Approvers  []string
	Admins     []string
	Channels   []string
	// FourEyes forbids the requester of a run to approve its reliefs.
	FourEyes bool
}

// Roles a command or a click needs.
const (
	RoleAnyone    = ""
	RoleResponder = "responder"
	RoleApprover  = "approver"
	RoleAdmin     = "admin"
)

// Groups resolves a user group to its members' ids.
type Groups interface {
	GroupMembers(ctx context.Context, groupID string) ([]string, error)
}

// authorizer answers "may this user act in this role", resolving user groups
// through Groups and caching each group's members for a while: group membership
// changes rarely, and a lookup per click would hit the chat API's rate limits.
type authorizer struct {
	access Access
	groups Groups
	ttl    time.Duration
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]cachedGroup
}

type cachedGroup struct {
	members []string
	at      time.Time
}

func (a *authorizer) list(role string) []string {
	switch role {
	case RoleResponder:
		return append(slices.Clone(a.access.Responders), a.access.Admins...)
	case RoleApprover:
		return append(slices.Clone(a.access.Approvers), a.access.Admins...)
	case RoleAdmin:
		return a.access.Admins
	}
	return nil
}

// allowed reports whether user holds role. An empty list allows nobody: access is
// granted by configuration, never by its absence.
func (a *authorizer) allowed(ctx context.Context, user, role string) (bool, error) {
	if role == RoleAnyone {
		return true, nil
	}
	for _, id := range a.list(role) {
		if id == user {
			return true, nil
		}
		if !isGroup(id) {
			continue
		}
		members, err := a.members(ctx, id)
		if err != nil {
			return false, err
		}
		if slices.Contains(members, user) {
			return true, nil
		}
	}
	return false, nil
}

func isGroup(id string) bool { return strings.HasPrefix(id, "S") }

func (a *authorizer) members(ctx context.Context, group string) ([]string, error) {
	a.mu.Lock()
	c, ok := a.cache[group]
	a.mu.Unlock()
	if ok && a.now().Sub(c.at) < a.ttl {
		return c.members, nil
	}
	if a.groups == nil {
		return nil, nil
	}
	m, err := a.groups.GroupMembers(ctx, group)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.cache[group] = cachedGroup{members: m, at: a.now()}
	a.mu.Unlock()
	return m, nil
}

// channelAllowed reports whether commands may run in the channel. No configured
// channels means every channel the bot is in.
func (a *authorizer) channelAllowed(id, name string) bool {
	if len(a.access.Channels) == 0 {
		return true
	}
	for _, c := range a.access.Channels {
		if c == id {
			return true
		}
		if name != "" {
			if ok, _ := path.Match(c, name); ok {
				return true
			}
		}
	}
	return false
}
