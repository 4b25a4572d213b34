package ul

import "fmt"

// State is a state of the upper layer state machine (PS3.8 table 9-1).
type State int

// States of PS3.8 section 9.2.
const (
	Sta1  State = 1  // idle
	Sta2  State = 2  // transport open, awaiting A-ASSOCIATE-RQ
	Sta3  State = 3  // awaiting the local A-ASSOCIATE response
	Sta4  State = 4  // awaiting transport connection
	Sta5  State = 5  // awaiting A-ASSOCIATE-AC or -RJ
	Sta6  State = 6  // association established: data transfer
	Sta7  State = 7  // awaiting A-RELEASE-RP
	Sta8  State = 8  // awaiting the local A-RELEASE response
	Sta9  State = 9  // release collision, requestor: awaiting local release response
	Sta10 State = 10 // release collision, acceptor: awaiting A-RELEASE-RP
	Sta11 State = 11 // release collision, requestor: awaiting A-RELEASE-RP
	Sta12 State = 12 // release collision, acceptor: awaiting local release response
	Sta13 State = 13 // awaiting transport close
)

// Event is an event of the state machine (PS3.8 table 9-2).
type Event int

// Events of PS3.8 section 9.2.
const (
	Evt1  Event = 1  // local A-ASSOCIATE request
	Evt2  Event = 2  // transport connection confirmed
	Evt3  Event = 3  // A-ASSOCIATE-AC received
	Evt4  Event = 4  // A-ASSOCIATE-RJ received
	Evt5  Event = 5  // transport connection indication
	Evt6  Event = 6  // A-ASSOCIATE-RQ received
	Evt7  Event = 7  // local A-ASSOCIATE response (accept)
	Evt8  Event = 8  // local A-ASSOCIATE response (reject)
	Evt9  Event = 9  // local P-DATA request
	Evt10 Event = 10 // P-DATA-TF received
	Evt11 Event = 11 // local A-RELEASE request
	Evt12 Event = 12 // A-RELEASE-RQ received
	Evt13 Event = 13 // A-RELEASE-RP received
	Evt14 Event = 14 // local A-RELEASE response
	Evt15 Event = 15 // local A-ABORT request
	Evt16 Event = 16 // A-ABORT received
	Evt17 Event = 17 // transport connection closed
	Evt18 Event = 18 // ARTIM timer expired
	Evt19 Event = 19 // unrecognized or invalid PDU received
)

// Action is what the machine does on a transition (PS3.8 table 9-6 to
// 9-9), named as there.
type Action int

// Actions. ActInvalid marks an event the state does not allow from the
// local user (a programming error of the caller, reported as an error).
const (
	ActInvalid Action = iota
	AE1               // issue transport connect
	AE2               // send A-ASSOCIATE-RQ
	AE3               // indicate acceptance
	AE4               // indicate rejection, close transport
	AE5               // accept transport, start ARTIM
	AE6               // stop ARTIM, hand the request to the user
	AE7               // send A-ASSOCIATE-AC
	AE8               // send A-ASSOCIATE-RJ, start ARTIM
	DT1               // send P-DATA-TF
	DT2               // indicate P-DATA
	AR1               // send A-RELEASE-RQ
	AR2               // indicate release request
	AR3               // indicate release confirmation, close transport
	AR4               // send A-RELEASE-RP, start ARTIM
	AR5               // stop ARTIM
	AR6               // indicate P-DATA (while awaiting release response)
	AR7               // send P-DATA-TF (after a release request arrived)
	AR8               // release collision: indicate release request
	AR9               // send A-RELEASE-RP (collision, requestor)
	AR10              // indicate release confirmation (collision, acceptor)
	AA1               // send A-ABORT (user source), start ARTIM
	AA2               // stop ARTIM, close transport
	AA3               // indicate abort, close transport
	AA4               // indicate provider abort
	AA5               // stop ARTIM
	AA6               // ignore the PDU
	AA7               // send A-ABORT (provider)
	AA8               // send A-ABORT (provider), indicate, start ARTIM
)

var actionNames = [...]string{"invalid", "AE-1", "AE-2", "AE-3", "AE-4", "AE-5", "AE-6", "AE-7", "AE-8",
	"DT-1", "DT-2", "AR-1", "AR-2", "AR-3", "AR-4", "AR-5", "AR-6", "AR-7", "AR-8", "AR-9", "AR-10",
	"AA-1", "AA-2", "AA-3", "AA-4", "AA-5", "AA-6", "AA-7", "AA-8"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

func (s State) String() string { return fmt.Sprintf("Sta%d", int(s)) }

// Transition returns the action and next state for event e in state s
// (PS3.8 table 9-10). requestor says which side of the association this
// machine is, which decides the release collision states. AE-6 goes to
// Sta3; the caller's decision then raises Evt7 or Evt8. Events a state
// does not expect from the peer (a PDU out of turn) abort the
// association; events it does not allow from the local user yield
// ActInvalid and leave the state unchanged.
func Transition(s State, e Event, requestor bool) (Action, State) {
	// Transport closed and A-ABORT received end the association from
	// every state but idle.
	switch s {
	case Sta1:
		switch e {
		case Evt1:
			return AE1, Sta4
		case Evt5:
			return AE5, Sta2
		}
		return ActInvalid, s
	case Sta2:
		switch e {
		case Evt6:
			return AE6, Sta3
		case Evt3, Evt4, Evt10, Evt12, Evt13, Evt19:
			return AA1, Sta13
		case Evt16, Evt18:
			return AA2, Sta1
		case Evt17:
			return AA5, Sta1
		}
		return ActInvalid, s
	case Sta4:
		switch e {
		case Evt2:
			return AE2, Sta5
		case Evt15:
			return AA2, Sta1
		case Evt17:
			return AA4, Sta1
		}
		return ActInvalid, s
	case Sta13:
		switch e {
		case Evt3, Evt4, Evt10, Evt12, Evt13:
			return AA6, Sta13
		case Evt6, Evt19:
			return AA7, Sta13
		case Evt16, Evt18:
			return AA2, Sta1
		case Evt17:
			return AR5, Sta1
		}
		return ActInvalid, s
	}
	// States 3 and 5 to 12: an association is being set up or is up.
	switch e {
	case Evt15:
		return AA1, Sta13
	case Evt16:
		return AA3, Sta1
	case Evt17:
		return AA4, Sta1
	case Evt3, Evt4, Evt6, Evt10, Evt12, Evt13, Evt19:
		// Handled per state below when expected; otherwise out of turn.
	case Evt18:
		return ActInvalid, s
	}
	switch s {
	case Sta3:
		switch e {
		case Evt7:
			return AE7, Sta6
		case Evt8:
			return AE8, Sta13
		}
	case Sta5:
		switch e {
		case Evt3:
			return AE3, Sta6
		case Evt4:
			return AE4, Sta1
		}
	case Sta6:
		switch e {
		case Evt9:
			return DT1, Sta6
		case Evt10:
			return DT2, Sta6
		case Evt11:
			return AR1, Sta7
		case Evt12:
			return AR2, Sta8
		}
	case Sta7:
		switch e {
		case Evt10:
			return AR6, Sta7
		case Evt12:
			if requestor {
				return AR8, Sta9
			}
			return AR8, Sta10
		case Evt13:
			return AR3, Sta1
		}
	case Sta8:
		switch e {
		case Evt9:
			return AR7, Sta8
		case Evt14:
			return AR4, Sta13
		}
	case Sta9:
		if e == Evt14 {
			return AR9, Sta11
		}
	case Sta10:
		if e == Evt13 {
			return AR10, Sta12
		}
	case Sta11:
		if e == Evt13 {
			return AR3, Sta1
		}
	case Sta12:
		if e == Evt14 {
			return AR4, Sta13
		}
	}
	if isPeerEvent(e) {
		return AA8, Sta13
	}
	return ActInvalid, s
}

func isPeerEvent(e Event) bool {
	switch e {
	case Evt3, Evt4, Evt6, Evt10, Evt12, Evt13, Evt16, Evt19:
		return true
	}
	return false
}

// pduEvent maps a received PDU to its event.
func pduEvent(p PDU) Event {
	switch p.(type) {
	case *AssociateAC:
		return Evt3
	case *AssociateRJ:
		return Evt4
	case *AssociateRQ:
		return Evt6
	case *PDataTF:
		return Evt10
	case *ReleaseRQ:
		return Evt12
	case *ReleaseRP:
		return Evt13
	case *Abort:
		return Evt16
	}
	return Evt19
}
