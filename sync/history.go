package sync

import (
	"regexp"
	"strings"

	"github.com/syncd/syncd/planner"
	"github.com/syncd/syncd/state"
)

// RejectionOf reads a rejected journal entry back as the Rejection that the
// run reported, so that a run's rejects read the same in syncd status as
// in syncd diff: a CRM row's entry (kind reject) holds Rejection.String(),
// a contact Sinch refused holds Sinch's answer as its error.
func RejectionOf(e state.JournalEntry) planner.Rejection {
	if e.Kind != state.KindReject {
		return planner.Rejection{ExternalID: e.ExternalID, Column: "sinch", Reason: e.Error}
	}
	if column, reason, ok := strings.Cut(e.Reason, ": "); ok && columnName.MatchString(column) {
		return planner.Rejection{ExternalID: e.ExternalID, Column: column, Reason: reason}
	}
	return planner.Rejection{ExternalID: e.ExternalID, Reason: e.Reason}
}

var columnName = regexp.MustCompile(`^[a-z_]+$`)
