package dimse

import (
	"errors"
	"fmt"
)

// Status codes (PS3.7 annex C and the service classes of PS3.4).
const (
	StatusSuccess                 uint16 = 0x0000
	StatusPending                 uint16 = 0xFF00
	StatusPendingWarning          uint16 = 0xFF01 // C-FIND: optional keys not supported
	StatusCancel                  uint16 = 0xFE00
	StatusSOPClassNotSupported    uint16 = 0x0122
	StatusNotAuthorized           uint16 = 0x0124
	StatusDuplicateInstance       uint16 = 0x0111
	StatusProcessingFailure       uint16 = 0x0110
	StatusInvalidObjectInstance   uint16 = 0x0117
	StatusUnrecognizedOperation   uint16 = 0x0211
	StatusMistypedArgument        uint16 = 0x0212
	StatusDuplicateInvocation     uint16 = 0x0210
	StatusOutOfResources          uint16 = 0xA700
	StatusOutOfResourcesMatches   uint16 = 0xA701 // C-MOVE/C-GET: unable to calculate matches
	StatusOutOfResourcesSubOps    uint16 = 0xA702 // C-MOVE/C-GET: unable to perform sub-operations
	StatusMoveDestinationUnknown  uint16 = 0xA801
	StatusDataSetDoesNotMatch     uint16 = 0xA900
	StatusIdentifierDoesNotMatch  uint16 = 0xA900
	StatusCannotUnderstand        uint16 = 0xC000
	StatusCoercionOfDataElements  uint16 = 0xB000
	StatusElementsDiscarded       uint16 = 0xB007
	StatusDataSetDoesNotMatchWarn uint16 = 0xB006
	StatusSubOpsCompleteFailures  uint16 = 0xB000 // C-MOVE/C-GET warning
)

// StatusKind classifies a status code.
type StatusKind int

// Kinds of status (PS3.7 C.1).
const (
	KindSuccess StatusKind = iota
	KindPending
	KindCancel
	KindWarning
	KindFailure
)

// Kind returns the class of a status code.
func Kind(s uint16) StatusKind {
	switch {
	case s == 0:
		return KindSuccess
	case s == 0xFF00 || s == 0xFF01:
		return KindPending
	case s == 0xFE00:
		return KindCancel
	case s == 0x0001 || s&0xF000 == 0xB000 || s == 0x0107 || s == 0x0116:
		return KindWarning
	}
	return KindFailure
}

// StatusText says a status code in words.
func StatusText(s uint16) string {
	switch s {
	case StatusSuccess:
		return "success"
	case StatusPending:
		return "pending"
	case StatusPendingWarning:
		return "pending (optional keys not supported)"
	case StatusCancel:
		return "cancelled"
	case StatusSOPClassNotSupported:
		return "SOP class not supported"
	case StatusNotAuthorized:
		return "refused: not authorized"
	case StatusDuplicateInstance:
		return "duplicate SOP instance"
	case StatusProcessingFailure:
		return "processing failure"
	case StatusInvalidObjectInstance:
		return "invalid SOP instance"
	case StatusUnrecognizedOperation:
		return "unrecognized operation"
	case StatusMistypedArgument:
		return "mistyped argument"
	case StatusDuplicateInvocation:
		return "duplicate invocation"
	case StatusOutOfResources:
		return "refused: out of resources"
	case StatusOutOfResourcesMatches:
		return "refused: out of resources (unable to calculate the number of matches)"
	case StatusOutOfResourcesSubOps:
		return "refused: out of resources (unable to perform sub-operations)"
	case StatusMoveDestinationUnknown:
		return "refused: move destination unknown"
	case StatusDataSetDoesNotMatch:
		return "data set or identifier does not match the SOP class"
	case StatusCannotUnderstand:
		return "cannot understand"
	case StatusCoercionOfDataElements:
		return "warning: coercion of data elements, or sub-operations completed with failures"
	case StatusElementsDiscarded:
		return "warning: elements discarded"
	case StatusDataSetDoesNotMatchWarn:
		return "warning: data set does not match the SOP class"
	}
	switch Kind(s) {
	case KindWarning:
		return fmt.Sprintf("warning 0x%04X", s)
	case KindFailure:
		if s&0xF000 == 0xA000 {
			return fmt.Sprintf("refused 0x%04X", s)
		}
		if s&0xF000 == 0xC000 {
			return fmt.Sprintf("failed: cannot process (0x%04X)", s)
		}
		return fmt.Sprintf("failed 0x%04X", s)
	}
	return fmt.Sprintf("status 0x%04X", s)
}

// StatusError is a response status that is a failure or cancel, returned
// by the client. It carries the command so callers can see sub-operation
// counts and the error comment.
type StatusError struct {
	Op      string
	Status  uint16
	Comment string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("dimse: %s: %s (0x%04X)", e.Op, StatusText(e.Status), e.Status)
	if e.Comment != "" {
		msg += ": " + e.Comment
	}
	return msg
}

// IsStatus reports whether err is a *StatusError with status s.
func IsStatus(err error, s uint16) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == s
}
