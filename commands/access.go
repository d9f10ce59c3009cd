package commands

import (
	"context"
	"path"
	"slices"
	"sync"

	"github.com/ndrbot/ndrbot/store"
)

// Access says who may do what, and where: chat user ids or user-group ids (the
// chat platform tells them apart: Groups.IsGroup), and channel ids or name
// patterns (path.Match syntax, e.g. "inc-*").
type Access struct {
	Responders []string
	Approvers  []string
	Admins     []string
	Channels   []string
	// FourEyes forbids the requester of a run to approve its reliefs.
	FourEyes bool
}

// Roles a command or a click needs. The two that decide reliefs are the
// store's, which records them with each vote and checks them at the claim.
const (
	RoleAnyone    = ""
	RoleResponder = "responder"
	RoleApprover  = store.RoleApprover
	RoleAdmin     = store.RoleAdmin
)

// TerminalRole is the role a vote at the terminal is cast under: the person at
// it runs the bot with its own configuration, store and credentials, so no
// narrower role can be told apart there (access lists name chat users).
const TerminalRole = RoleAdmin

// Groups resolves a user group to its members' ids. GroupMembers may answer
// from a cache (who may run a command); GroupMembersNow asks the chat platform,
// and is what decisions on reliefs are taken on. IsGroup tells a group's id
// from a user's.
type Groups interface {
	IsGroup(id string) bool
	GroupMembers(ctx context.Context, groupID string) ([]string, error)
	GroupMembersNow(ctx context.Context, groupID string) ([]string, error)
}

// authorizer answers "may this user act in this role", resolving user groups
// through Groups.
type authorizer struct {
	groups Groups

	mu     sync.RWMutex
	access Access // replaced whole by a reload (Service.SetAccess)
}

// lists is the access lists now.
func (a *authorizer) lists() Access {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.access
}

func (a *authorizer) list(role string) []string {
	switch role {
	case RoleResponder:
		return append(slices.Clone(a.lists().Responders), a.lists().Admins...)
	case RoleApprover:
		return append(slices.Clone(a.lists().Approvers), a.lists().Admins...)
	case RoleAdmin:
		return a.lists().Admins
	}
	return nil
}

// allowed reports whether user holds role, with group membership as recent as
// the chat platform's cache. An empty list allows nobody: access is granted by
// configuration, never by its absence.
func (a *authorizer) allowed(ctx context.Context, user, role string) (bool, error) {
	return a.holds(ctx, user, role, false)
}

// decidesAs is the strongest role user may approve or reject reliefs under:
// RoleAdmin, RoleApprover, or "" (neither). Group membership is read live at
// the click, so a member removed from a group a moment ago is refused (the
// bound is one usergroups.users.list round-trip). The click records the role
// with the vote; the store checks it against the approval's role. An approver
// whose admin groups could not be read decides as an approver.
func (a *authorizer) decidesAs(ctx context.Context, user string) (string, error) {
	lists := a.lists()
	admin, errAdmin := a.member(ctx, user, lists.Admins, true)
	if admin {
		return RoleAdmin, nil
	}
	approver, err := a.member(ctx, user, lists.Approvers, true)
	switch {
	case approver:
		return RoleApprover, nil
	case err != nil:
		return "", err
	case errAdmin != nil:
		return "", errAdmin
	}
	return "", nil
}

func (a *authorizer) holds(ctx context.Context, user, role string, live bool) (bool, error) {
	if role == RoleAnyone {
		return true, nil
	}
	return a.member(ctx, user, a.list(role), live)
}

// member reports whether user is one of ids or in one of the user groups among them.
func (a *authorizer) member(ctx context.Context, user string, ids []string, live bool) (bool, error) {
	for _, id := range ids {
		if id == user {
			return true, nil
		}
		if a.groups == nil || !a.groups.IsGroup(id) {
			continue
		}
		lookup := a.groups.GroupMembers
		if live {
			lookup = a.groups.GroupMembersNow
		}
		members, err := lookup(ctx, id)
		if err != nil {
			return false, err
		}
		if slices.Contains(members, user) {
			return true, nil
		}
	}
	return false, nil
}

// channelAllowed reports whether commands may run in the channel. No configured
// channels means every channel the bot is in.
func (a *authorizer) channelAllowed(id, name string) bool {
	channels := a.lists().Channels
	if len(channels) == 0 {
		return true
	}
	for _, c := range channels {
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
