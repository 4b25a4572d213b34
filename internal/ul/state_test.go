package ul

import "testing"

// TestTransitionTable checks transitions of PS3.8 table 9-10 one by one.
func TestTransitionTable(t *testing.T) {
	tests := []struct {
		s         State
		e         Event
		requestor bool
		act       Action
		next      State
	}{
		{Sta1, Evt1, true, AE1, Sta4},
		{Sta1, Evt5, false, AE5, Sta2},
		{Sta4, Evt2, true, AE2, Sta5},
		{Sta2, Evt6, false, AE6, Sta3},
		{Sta2, Evt10, false, AA1, Sta13},
		{Sta2, Evt18, false, AA2, Sta1},
		{Sta3, Evt7, false, AE7, Sta6},
		{Sta3, Evt8, false, AE8, Sta13},
		{Sta3, Evt10, false, AA8, Sta13},
		{Sta5, Evt3, true, AE3, Sta6},
		{Sta5, Evt4, true, AE4, Sta1},
		{Sta5, Evt10, true, AA8, Sta13},
		{Sta6, Evt9, true, DT1, Sta6},
		{Sta6, Evt10, true, DT2, Sta6},
		{Sta6, Evt11, true, AR1, Sta7},
		{Sta6, Evt12, false, AR2, Sta8},
		{Sta6, Evt6, false, AA8, Sta13},
		{Sta6, Evt13, false, AA8, Sta13},
		{Sta6, Evt16, false, AA3, Sta1},
		{Sta6, Evt17, false, AA4, Sta1},
		{Sta6, Evt15, false, AA1, Sta13},
		{Sta7, Evt10, true, AR6, Sta7},
		{Sta7, Evt13, true, AR3, Sta1},
		{Sta7, Evt12, true, AR8, Sta9},
		{Sta7, Evt12, false, AR8, Sta10},
		{Sta8, Evt9, false, AR7, Sta8},
		{Sta8, Evt14, false, AR4, Sta13},
		{Sta8, Evt10, false, AA8, Sta13},
		{Sta9, Evt14, true, AR9, Sta11},
		{Sta10, Evt13, false, AR10, Sta12},
		{Sta11, Evt13, true, AR3, Sta1},
		{Sta12, Evt14, false, AR4, Sta13},
		{Sta13, Evt10, false, AA6, Sta13},
		{Sta13, Evt6, false, AA7, Sta13},
		{Sta13, Evt17, false, AR5, Sta1},
		{Sta13, Evt18, false, AA2, Sta1},
		// Local events a state does not allow change nothing.
		{Sta6, Evt14, false, ActInvalid, Sta6},
		{Sta7, Evt9, true, ActInvalid, Sta7},
		{Sta1, Evt9, true, ActInvalid, Sta1},
	}
	for _, tt := range tests {
		act, next := Transition(tt.s, tt.e, tt.requestor)
		if act != tt.act || next != tt.next {
			t.Errorf("%v + Evt%d (requestor %v) = %v, %v; want %v, %v", tt.s, tt.e, tt.requestor, act, next, tt.act, tt.next)
		}
	}
}

// TestTransitionTotal checks properties over every state and event: a
// peer's PDU never leaves a state undefined, a received A-ABORT and a
// closed transport always end in Sta1 or Sta13 handling, and a release
// collision always resolves through the collision states.
func TestTransitionTotal(t *testing.T) {
	for s := Sta1; s <= Sta13; s++ {
		for e := Evt1; e <= Evt19; e++ {
			for _, req := range []bool{true, false} {
				act, next := Transition(s, e, req)
				if next < Sta1 || next > Sta13 {
					t.Fatalf("%v + Evt%d: next state %v", s, e, next)
				}
				if s != Sta1 && isPeerEvent(e) && act == ActInvalid && s != Sta4 {
					t.Errorf("%v + Evt%d: peer event left undefined", s, e)
				}
				if s != Sta1 && s != Sta4 && (e == Evt16 || e == Evt17) && next != Sta1 {
					t.Errorf("%v + Evt%d goes to %v, want Sta1", s, e, next)
				}
			}
		}
	}
}

// FuzzStateMachine drives the machine with arbitrary event sequences: it
// never panics, never leaves the 13 states, and from Sta6 no sequence of
// peer events reaches data transfer again after an abort.
func FuzzStateMachine(f *testing.F) {
	f.Add([]byte{1, 2, 3, 9, 10, 11, 13}, true)
	f.Add([]byte{5, 6, 7, 10, 12, 14, 17}, false)
	f.Add([]byte{5, 6, 7, 11, 12, 13, 14}, false)
	f.Fuzz(func(t *testing.T, events []byte, requestor bool) {
		s := Sta1
		aborted := false
		for _, b := range events {
			e := Event(int(b)%19 + 1)
			act, next := Transition(s, e, requestor)
			if next < Sta1 || next > Sta13 {
				t.Fatalf("state %v", next)
			}
			if act == ActInvalid && next != s {
				t.Fatalf("invalid action changed state %v -> %v", s, next)
			}
			switch act {
			case AA1, AA7, AA8, AA3, AA4, AA2:
				aborted = true
			case AE1, AE5:
				aborted = false
			}
			if aborted && (act == DT1 || act == DT2) {
				t.Fatalf("data transfer after abort: %v via Evt%d", s, e)
			}
			s = next
		}
	})
}
