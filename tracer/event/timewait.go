package event

// InferTimeWait returns the TIME_WAIT enter that a state event implies, if any.
// The kernel hands the 4-tuple to an inet_timewait_sock without reporting it:
// the full socket of the active closer goes FIN_WAIT2→CLOSE or CLOSING→CLOSE.
// A reset on the way (sk_err set) means no TIME_WAIT follows.
func InferTimeWait(st *Event, tw *Event) bool {
	if st.Kind != KindState || st.New != StateClose || st.Reset ||
		(st.Old != StateFinWait2 && st.Old != StateClosing) {
		return false
	}
	*tw = Event{
		Kind:      KindTimeWait,
		Time:      st.Time,
		NetNS:     st.NetNS,
		Family:    st.Family,
		Src:       st.Src,
		Dst:       st.Dst,
		Cookie:    st.Cookie,
		Owner:     st.Owner,
		OwnerComm: st.OwnerComm,
		UID:       st.UID,
		UIDKnown:  st.UIDKnown,
		TimeWait:  TimeWaitEnter,
		Remaining: TimeWaitLen,
		Source:    SourceInferred,
	}
	return true
}
