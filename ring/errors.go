package ring

import "errors"

// Errors returned by the package; test with errors.Is.
var (
	ErrBadMeta             = errors.New("bad member metadata")
	ErrUnknownRole         = errors.New("unknown role")
	ErrUnknownState        = errors.New("unknown state")
	ErrInsufficientMembers = errors.New("not enough active members")
	ErrNoSuchMember        = errors.New("no such member")
	ErrMemberAlive         = errors.New("member is alive")
	ErrClosed              = errors.New("ring closed")
)
