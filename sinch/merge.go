package sinch

import "slices"

// Merged returns what Sinch keeps when source is merged into destination:
// the destination keeps its own channel identities and gains the source's
// only on channels it did not have, appended to the bottom of its channel
// priority; the source's optional fields fill only the destination's empty
// ones. The reconciler predicts merges with it, and the emulator performs them.
func Merged(destination, source Contact) Contact {
	out := destination
	out.ChannelIdentities = slices.Clone(destination.ChannelIdentities)
	out.ChannelPriority = slices.Clone(destination.ChannelPriority)

	had := make(map[string]bool, len(destination.ChannelIdentities))
	for _, id := range destination.ChannelIdentities {
		had[id.Channel] = true
	}
	for _, id := range source.ChannelIdentities {
		if had[id.Channel] {
			continue
		}
		out.ChannelIdentities = append(out.ChannelIdentities, id)
		if !slices.Contains(out.ChannelPriority, id.Channel) {
			out.ChannelPriority = append(out.ChannelPriority, id.Channel)
		}
	}

	// "Unknown" and UNSPECIFIED are how Sinch shows an empty display name
	// and language, so they count as empty on both sides.
	fill := func(dst *string, src, shownAsEmpty string) {
		if (*dst == "" || *dst == shownAsEmpty) && src != "" && src != shownAsEmpty {
			*dst = src
		}
	}
	fill(&out.DisplayName, source.DisplayName, DefaultDisplayName)
	fill(&out.Language, source.Language, LanguageUnspecified)
	fill(&out.Email, source.Email, "")
	fill(&out.ExternalID, source.ExternalID, "")
	fill(&out.Metadata, source.Metadata, "")
	return out
}

// DefaultDisplayName is what Sinch shows for a contact created without a name.
const DefaultDisplayName = "Unknown"
