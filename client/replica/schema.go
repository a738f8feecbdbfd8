package replica

import (
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/fristed/fristed/syncproto"
)

// FieldType says which values a field takes. Values are always strings;
// the type says which strings.
type FieldType string

const (
	TypeText    FieldType = "text"    // free text, several lines allowed; no other control characters
	TypeDate    FieldType = "date"    // a calendar date, YYYY-MM-DD
	TypeEnum    FieldType = "enum"    // one of the field's Values
	TypeYear    FieldType = "year"    // a year, four digits
	TypeRef     FieldType = "ref"     // the id (x_...) of a live record of kind Ref in the same stream
	TypeMinutes FieldType = "minutes" // a positive whole number, written without sign or leading zeros
	TypeTime    FieldType = "time"    // an instant, RFC 3339 in UTC without fractions: 2024-05-01T09:30:00Z
	TypeDevice  FieldType = "device"  // a device id (d_...)
	TypeStream  FieldType = "stream"  // a stream id (s_...), e.g. the resident an audit event is about
)

// Class says how a kind's records merge.
type Class string

const (
	// ClassRecord: each field is a register (last writer wins, concurrent
	// writes kept as a conflict); the whole record can be removed.
	ClassRecord Class = "record"
	// ClassEntry: an immutable entry in a grow-only set with tombstones. It
	// is added once with all its fields and can only be removed; a
	// correction is a removal plus a new entry.
	ClassEntry Class = "entry"
)

// StreamKind says which stream a kind belongs in. It is advice for callers
// (the replica does not know what a stream is for).
type StreamKind string

const (
	StreamResident  StreamKind = "resident"  // one resident's case
	StreamDirectory StreamKind = "directory" // the tenant's human labels
	StreamAudit     StreamKind = "audit"     // the access log
)

// Kind is one kind of record in the case model.
type Kind struct {
	Name   string     `json:"name"`
	Stream StreamKind `json:"stream"`
	Class  Class      `json:"class"`
	// Singleton kinds have exactly one record per stream, with the zero id
	// (the resident record, the org record).
	Singleton bool `json:"singleton,omitempty"`
	// NamedByID kinds use an id minted elsewhere (a worker or device id in
	// the admin chain) as the record id; their records come into being
	// with the first set, without an add.
	NamedByID bool    `json:"named_by_id,omitempty"`
	Doc       string  `json:"doc"`
	Fields    []Field `json:"fields"`
}

// Field is one field of a kind.
type Field struct {
	Name string    `json:"name"`
	Type FieldType `json:"type"`
	// Sealed fields are masked in views unless the caller reveals them
	// (and the client audits every reveal).
	Sealed bool `json:"sealed,omitempty"`
	// Required fields must be given when a record is added and cannot be
	// cleared.
	Required bool     `json:"required,omitempty"`
	Values   []string `json:"values,omitempty"` // TypeEnum: the allowed values, in display order
	Ref      string   `json:"ref,omitempty"`    // TypeRef: the kind referred to
	Doc      string   `json:"doc"`
}

// Kind names the client code refers to.
const (
	KindResident = "resident"
	KindLog      = "log"
	KindAudit    = "audit"
)

// Masked is shown in place of a sealed value that is not revealed.
const Masked = "•••• (sealed)"

// MaxTextLen bounds one field value, in bytes.
const MaxTextLen = 64 << 10

// plannedStay is the nominal length of a placement (DOMAIN.md: botid).
const plannedStayMonths = 6

var yesNo = []string{"yes", "no"}

// schema is the case model. Order matters: it is the display order of
// kinds and fields in views, JSON and SCHEMA.md.
var schema = []Kind{
	{Name: KindResident, Stream: StreamResident, Class: ClassRecord, Singleton: true,
		Doc: "The resident's own record: identity, address protection, placement, alarm. Record id zero.",
		Fields: []Field{
			{Name: "pseudonym", Type: TypeText, Required: true, Doc: "the name used in the software"},
			{Name: "legal_name", Type: TypeText, Sealed: true, Doc: "legal name"},
			{Name: "aliases", Type: TypeText, Sealed: true, Doc: "other names the resident is known by"},
			{Name: "description", Type: TypeText, Sealed: true, Doc: "physical description without a photo (height, build, hair, marks), for the alarm card"},
			{Name: "secret_address", Type: TypeText, Sealed: true, Doc: "the secret address (hemmelig adresse)"},
			{Name: "address_code", Type: TypeEnum, Values: []string{"6", "7", "none"}, Doc: "address protection: code 6 (strengt fortrolig), code 7 (fortrolig) or none"},
			{Name: "address_code_applied", Type: TypeDate, Doc: "when address protection was applied for"},
			{Name: "address_code_granted", Type: TypeDate, Doc: "when address protection was granted"},
			{Name: "name_change", Type: TypeEnum, Values: []string{"none", "applied", "granted"}, Doc: "status of a name change; the new name itself belongs in legal_name or aliases (sealed)"},
			{Name: "cover_story", Type: TypeText, Sealed: true, Doc: "the cover story (dekkhistorie)"},
			{Name: "language", Type: TypeText, Doc: "language(s) spoken"},
			{Name: "time_in_norway", Type: TypeText, Doc: "time in Norway, e.g. \"3 years\""},
			{Name: "unit", Type: TypeText, Doc: "the unit (bokollektiv or flat group)"},
			{Name: "flat", Type: TypeText, Doc: "the flat within the unit"},
			{Name: "arrived", Type: TypeDate, Required: true, Doc: "arrival date"},
			{Name: "planned_move_out", Type: TypeDate, Doc: "planned move-out; when not set, shown as arrived + 6 months"},
			{Name: "moved_out", Type: TypeDate, Doc: "actual move-out date"},
			{Name: "moved_to", Type: TypeEnum, Values: []string{"own_alone", "own_friends", "own_partner", "family_parents", "family_mother", "family_spouse", "crisis_centre", "other_unit"}, Doc: "where the resident moved (report table 5-1)"},
			{Name: "alarm_issued", Type: TypeEnum, Values: yesNo, Doc: "whether a violence alarm (voldsalarm) was issued"},
			{Name: "alarm_id", Type: TypeText, Doc: "the alarm's id"},
			{Name: "closed", Type: TypeEnum, Values: yesNo, Doc: "whether the case is closed"},
		}},
	{Name: "child", Stream: StreamResident, Class: ClassRecord,
		Doc: "A child who came along.",
		Fields: []Field{
			{Name: "name", Type: TypeText, Sealed: true, Required: true, Doc: "the child's name"},
			{Name: "birth_year", Type: TypeYear, Doc: "year of birth"},
			{Name: "notes", Type: TypeText, Doc: "notes"},
		}},
	{Name: "threat", Stream: StreamResident, Class: ClassRecord,
		Doc: "A threat assessment (trusselvurdering) or a revision of one.",
		Fields: []Field{
			{Name: "source", Type: TypeEnum, Required: true, Values: []string{"sending_police_district", "competence_team_police", "local_police"}, Doc: "who made the assessment"},
			{Name: "date", Type: TypeDate, Doc: "date of the assessment"},
			{Name: "actors", Type: TypeText, Doc: "threat actors"},
			{Name: "relation", Type: TypeText, Doc: "the actors' relation to the resident"},
			{Name: "vehicles", Type: TypeText, Doc: "vehicles the actors use"},
			{Name: "level", Type: TypeEnum, Values: []string{"low", "medium", "high"}, Doc: "assessed threat level"},
			{Name: "text", Type: TypeText, Doc: "the assessment"},
			{Name: "revises", Type: TypeRef, Ref: "threat", Doc: "the assessment this one revises"},
		}},
	{Name: "need", Stream: StreamResident, Class: ClassRecord,
		Doc: "A need (report table 1-1) and the measures for it.",
		Fields: []Field{
			{Name: "category", Type: TypeEnum, Required: true, Values: []string{"external_security", "inner_safety", "psychological", "practical_housing", "practical_money", "practical_services", "practical_society", "practical_language", "psychosocial_loneliness", "psychosocial_family"}, Doc: "the kind of need"},
			{Name: "description", Type: TypeText, Doc: "the need"},
			{Name: "measures", Type: TypeText, Doc: "measures"},
		}},
	{Name: "goal", Stream: StreamResident, Class: ClassRecord,
		Doc: "A goal or sub-goal of the individual action plan (individuell handlingsplan).",
		Fields: []Field{
			{Name: "title", Type: TypeText, Required: true, Doc: "the goal"},
			{Name: "parent", Type: TypeRef, Ref: "goal", Doc: "for a sub-goal, the goal it belongs to"},
			{Name: "measures", Type: TypeText, Doc: "measures"},
			{Name: "owner", Type: TypeText, Doc: "who follows it up"},
			{Name: "due", Type: TypeDate, Doc: "due date"},
			{Name: "status", Type: TypeEnum, Values: []string{"open", "in_progress", "achieved", "dropped"}, Doc: "status"},
		}},
	{Name: "evaluation", Stream: StreamResident, Class: ClassEntry,
		Doc: "An evaluation of the action plan (every 3 months). Immutable: correct by removing and adding.",
		Fields: []Field{
			{Name: "goal", Type: TypeRef, Ref: "goal", Doc: "the goal evaluated; empty for the whole plan"},
			{Name: "date", Type: TypeDate, Required: true, Doc: "date of the evaluation"},
			{Name: "text", Type: TypeText, Required: true, Doc: "the evaluation"},
		}},
	{Name: "timetable", Stream: StreamResident, Class: ClassRecord,
		Doc: "An item of the arrival timetable for the first two weeks.",
		Fields: []Field{
			{Name: "item", Type: TypeEnum, Required: true, Values: []string{"information_letter", "tenancy", "confidentiality", "alarm_application", "police_meeting", "nav", "family_counselling", "gp", "school_work", "action_plan", "other"}, Doc: "the item"},
			{Name: "due", Type: TypeDate, Doc: "due date"},
			{Name: "done", Type: TypeDate, Doc: "date done"},
			{Name: "notes", Type: TypeText, Doc: "notes; what the item is, for other"},
		}},
	{Name: "safety", Stream: StreamResident, Class: ClassRecord,
		Doc: "An item of the safety conversation checklist (sikkerhetssamtale) and its sign-off.",
		Fields: []Field{
			{Name: "item", Type: TypeEnum, Required: true, Values: []string{"alarms", "phone_internet", "address_secrecy", "no_visitors", "family_contact", "name_change_cover_story", "varied_routes", "places_to_avoid"}, Doc: "the checklist item"},
			{Name: "done", Type: TypeEnum, Values: yesNo, Doc: "whether the item was covered"},
			{Name: "signed_police", Type: TypeDate, Doc: "date the police signed it off"},
			{Name: "signed_staff", Type: TypeDate, Doc: "date staff signed it off"},
			{Name: "notes", Type: TypeText, Doc: "what was agreed"},
		}},
	{Name: "crisis", Stream: StreamResident, Class: ClassRecord,
		Doc: "A scenario of the crisis plan (kriseplan) and what to do.",
		Fields: []Field{
			{Name: "scenario", Type: TypeText, Required: true, Doc: "the scenario"},
			{Name: "action", Type: TypeText, Doc: "what to do"},
		}},
	{Name: "contact", Stream: StreamResident, Class: ClassRecord,
		Doc: "A contact in the services around the resident. Never the resident's family.",
		Fields: []Field{
			{Name: "role", Type: TypeEnum, Required: true, Values: []string{"police", "nav", "family_counselling", "gp", "school", "crisis_centre", "volunteer", "other"}, Doc: "the contact's role"},
			{Name: "name", Type: TypeText, Doc: "name"},
			{Name: "phone", Type: TypeText, Doc: "phone"},
			{Name: "notes", Type: TypeText, Doc: "notes"},
		}},
	{Name: "moveout", Stream: StreamResident, Class: ClassRecord,
		Doc: "The move-out plan.",
		Fields: []Field{
			{Name: "housing_search", Type: TypeText, Doc: "search for housing"},
			{Name: "nav_transfer", Type: TypeText, Doc: "transfer of the NAV case to the new municipality"},
			{Name: "address_protection", Type: TypeText, Doc: "continued address protection"},
			{Name: "handover", Type: TypeText, Doc: "handover to services there"},
		}},
	{Name: "alarm_card", Stream: StreamResident, Class: ClassRecord, NamedByID: true,
		Doc: "The alarm card last sealed into an envelope; the record id is the alarm id. Written by envelope seal and the automatic re-seal. Kept in the case, not the directory, so only those who may read the case can test a guess against the hash.",
		Fields: []Field{
			{Name: "sealed_at", Type: TypeTime, Doc: "when the card was sealed"},
			{Name: "content", Type: TypeText, Doc: "the hash (h_...) of what the card says apart from its sealed-at time; a coordinator's sync re-seals when the case's card would say something else"},
		}},
	{Name: KindLog, Stream: StreamResident, Class: ClassEntry,
		Doc: "A follow-up log entry: what was done, in which context, and for how long.",
		Fields: []Field{
			{Name: "category", Type: TypeEnum, Required: true, Values: []string{"practical", "environmental_therapy", "support_conversation", "safety", "leisure", "services"}, Doc: "the context"},
			{Name: "minutes", Type: TypeMinutes, Required: true, Doc: "time spent"},
			{Name: "text", Type: TypeText, Required: true, Doc: "the entry"},
			{Name: "author", Type: TypeDevice, Required: true, Doc: "the device that wrote it"},
			{Name: "at", Type: TypeTime, Required: true, Doc: "when it was written"},
		}},
	{Name: "org", Stream: StreamDirectory, Class: ClassRecord, Singleton: true,
		Doc: "The organisation.",
		Fields: []Field{
			{Name: "name", Type: TypeText, Required: true, Doc: "the organisation's name"},
		}},
	{Name: "unit", Stream: StreamDirectory, Class: ClassRecord,
		Doc: "A unit (bokollektiv or flat group).",
		Fields: []Field{
			{Name: "name", Type: TypeText, Required: true, Doc: "the unit's name"},
		}},
	{Name: "worker", Stream: StreamDirectory, Class: ClassRecord, NamedByID: true,
		Doc: "A worker; the record id is the worker id in the admin chain.",
		Fields: []Field{
			{Name: "name", Type: TypeText, Required: true, Doc: "the worker's name"},
		}},
	{Name: "device", Stream: StreamDirectory, Class: ClassRecord, NamedByID: true,
		Doc: "A device; the record id is the device id in the admin chain.",
		Fields: []Field{
			{Name: "name", Type: TypeText, Required: true, Doc: "the device's name"},
		}},
	{Name: "police", Stream: StreamDirectory, Class: ClassRecord, NamedByID: true,
		Doc: "A police contact; the record id is the contact id in the admin chain.",
		Fields: []Field{
			{Name: "name", Type: TypeText, Required: true, Doc: "the contact's name"},
			{Name: "recipient", Type: TypeText, Doc: "the contact's age recipient"},
			{Name: "phone", Type: TypeText, Doc: "phone"},
			{Name: "notes", Type: TypeText, Doc: "notes"},
		}},
	{Name: "alarm", Stream: StreamDirectory, Class: ClassRecord, NamedByID: true,
		Doc: "A sealed alarm envelope; the record id is the alarm id. The link to the resident lives only here.",
		Fields: []Field{
			{Name: "resident", Type: TypeStream, Required: true, Doc: "the resident's stream"},
			{Name: "police", Type: TypeRef, Ref: "police", Doc: "the police contact it is sealed to"},
			{Name: "sealed_at", Type: TypeTime, Doc: "when it was sealed"},
			{Name: "secret_hash", Type: TypeText, Doc: "the hash (h_...) of the release credential's secret, which the relay also keeps, so any coordinator laptop can re-seal without the credential file"},
			{Name: "purged", Type: TypeEnum, Values: yesNo, Doc: "yes once the envelope was re-sealed to the card of a purged case, which names the alarm and nothing else"},
			{Name: "generation", Type: TypeText, Doc: "the generation last sealed completely, or \"unfinished\" while a re-seal is under way; a re-seal is due when it is not the chain's (an interrupted re-seal)"},
		}},
	{Name: "closed_case", Stream: StreamDirectory, Class: ClassRecord, NamedByID: true,
		Doc: "What stays of a closed case for the annual report, with nothing that identifies the resident; the record id is the case's stream id.",
		Fields: []Field{
			{Name: "unit", Type: TypeText, Doc: "the unit"},
			{Name: "arrived", Type: TypeText, Required: true, Doc: "arrival month, YYYY-MM"},
			{Name: "moved_out", Type: TypeText, Required: true, Doc: "move-out month, YYYY-MM"},
			{Name: "stay_months", Type: TypeMinutes, Doc: "whole months of residence (0 is left unset)"},
			{Name: "moved_to", Type: TypeEnum, Required: true, Values: []string{"own_alone", "own_friends", "own_partner", "family_parents", "family_mother", "family_spouse", "crisis_centre", "other_unit"}, Doc: "where the resident moved (table 5-1)"},
			{Name: "threat_assessment", Type: TypeEnum, Values: []string{"yes", "no"}, Doc: "whether a threat assessment was recorded"},
			{Name: "minutes_practical", Type: TypeMinutes, Doc: "follow-up minutes: practical"},
			{Name: "minutes_environmental_therapy", Type: TypeMinutes, Doc: "follow-up minutes: environmental therapy"},
			{Name: "minutes_support_conversation", Type: TypeMinutes, Doc: "follow-up minutes: support conversation"},
			{Name: "minutes_safety", Type: TypeMinutes, Doc: "follow-up minutes: safety"},
			{Name: "minutes_leisure", Type: TypeMinutes, Doc: "follow-up minutes: leisure"},
			{Name: "minutes_services", Type: TypeMinutes, Doc: "follow-up minutes: contact with services"},
		}},
	{Name: KindAudit, Stream: StreamAudit, Class: ClassEntry,
		Doc: "An access event: a case opened, sealed fields revealed, case data exported.",
		Fields: []Field{
			{Name: "event", Type: TypeText, Required: true, Doc: "what happened: open, reveal, export (older entries: emergency card)"},
			{Name: "detail", Type: TypeText, Doc: "for an export, what was written out and where to"},
			{Name: "resident", Type: TypeStream, Doc: "the resident it concerns"},
			{Name: "device", Type: TypeDevice, Required: true, Doc: "the device it happened on"},
			{Name: "at", Type: TypeTime, Required: true, Doc: "when"},
		}},
}

var kindIndex = func() map[string]*Kind {
	m := make(map[string]*Kind, len(schema))
	for i := range schema {
		m[schema[i].Name] = &schema[i]
	}
	return m
}()

// Schema returns the case model: every kind with its fields, in display
// order. The result is a copy; callers may keep and change it.
func Schema() []Kind {
	out := make([]Kind, len(schema))
	for i, k := range schema {
		out[i] = k.clone()
	}
	return out
}

// LookupKind returns the kind named name.
func LookupKind(name string) (Kind, bool) {
	k, ok := kindIndex[name]
	if !ok {
		return Kind{}, false
	}
	return k.clone(), true
}

func (k Kind) clone() Kind {
	k.Fields = slices.Clone(k.Fields)
	for i := range k.Fields {
		k.Fields[i].Values = slices.Clone(k.Fields[i].Values)
	}
	return k
}

// Field returns the field named name.
func (k *Kind) Field(name string) (Field, bool) {
	for _, f := range k.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

func (k *Kind) fieldNames() []string {
	out := make([]string, len(k.Fields))
	for i, f := range k.Fields {
		out[i] = f.Name
	}
	return out
}

// recordKinds lists the kinds a case's records and entries can be added
// as (what `record add` takes), for error messages.
func recordKinds() []string {
	var out []string
	for _, k := range schema {
		if k.Stream == StreamResident && !k.Singleton && k.Name != KindLog {
			out = append(out, k.Name)
		}
	}
	return out
}

func lookupKind(name string) (*Kind, error) {
	k, ok := kindIndex[name]
	if !ok {
		return nil, &ValidationError{Problem: "unknown kind " + strconv.Quote(name), Allowed: recordKinds()}
	}
	return k, nil
}

func (k *Kind) lookupField(name string) (*Field, error) {
	for i := range k.Fields {
		if k.Fields[i].Name == name {
			return &k.Fields[i], nil
		}
	}
	return nil, &ValidationError{Kind: k.Name, Problem: "unknown field " + strconv.Quote(name), Allowed: k.fieldNames()}
}

// ValidateField checks one value against the schema, as a local edit
// would; the empty value clears an optional field. References are checked
// for form only (a Replica's ops builders also check that they exist).
func ValidateField(kind, field, value string) error {
	k, err := lookupKind(kind)
	if err != nil {
		return err
	}
	f, err := k.lookupField(field)
	if err != nil {
		return err
	}
	return f.validate(k.Name, value)
}

func (f *Field) validate(kind, v string) error {
	bad := func(problem string, allowed ...string) error {
		return &ValidationError{Kind: kind, Field: f.Name, Problem: problem, Allowed: allowed}
	}
	if v == "" {
		if f.Required {
			return bad("required")
		}
		return nil
	}
	if len(v) > MaxTextLen {
		return bad("longer than " + strconv.Itoa(MaxTextLen) + " bytes")
	}
	if !utf8.ValidString(v) {
		return bad("not valid UTF-8")
	}
	for _, c := range v {
		if (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return bad("contains a control character")
		}
	}
	switch f.Type {
	case TypeText:
	case TypeDate:
		if !isDate(v) {
			return bad("want a date YYYY-MM-DD")
		}
	case TypeEnum:
		if !slices.Contains(f.Values, v) {
			return bad("want one of", f.Values...)
		}
	case TypeYear:
		if n, err := strconv.Atoi(v); err != nil || len(v) != 4 || n < 1900 || n > 2200 {
			return bad("want a year YYYY")
		}
	case TypeRef:
		if _, err := syncproto.ParseDeltaID(v); err != nil {
			return bad("want the id (x_...) of a " + f.Ref + " record")
		}
	case TypeMinutes:
		if n, err := strconv.Atoi(v); err != nil || n <= 0 || strconv.Itoa(n) != v {
			return bad("want a positive whole number of minutes")
		}
	case TypeTime:
		t, err := time.Parse(time.RFC3339, v)
		if err != nil || t.Location() != time.UTC || t.Format(time.RFC3339) != v {
			return bad("want a UTC time YYYY-MM-DDTHH:MM:SSZ")
		}
	case TypeDevice:
		if _, err := syncproto.ParseDeviceID(v); err != nil {
			return bad("want a device id (d_...)")
		}
	case TypeStream:
		if _, err := syncproto.ParseStreamID(v); err != nil {
			return bad("want a stream id (s_...)")
		}
	default:
		return bad("unknown type " + string(f.Type))
	}
	return nil
}

func isDate(v string) bool {
	t, err := time.Parse(time.DateOnly, v)
	return err == nil && t.Format(time.DateOnly) == v
}

// addMonths adds n calendar months, clamping to the end of a shorter month
// (31 August + 6 months is the last day of February, not 3 March).
func addMonths(t time.Time, n int) time.Time {
	y, m, d := t.Date()
	first := time.Date(y, m+time.Month(n), 1, 0, 0, 0, 0, time.UTC)
	last := first.AddDate(0, 1, -1).Day()
	return time.Date(first.Year(), first.Month(), min(d, last), 0, 0, 0, 0, time.UTC)
}

// plannedMoveOut is the default planned move-out for an arrival date.
func plannedMoveOut(arrived string) (string, bool) {
	t, err := time.Parse(time.DateOnly, arrived)
	if err != nil {
		return "", false
	}
	return addMonths(t, plannedStayMonths).Format(time.DateOnly), true
}

// isSealed reports whether kind.field is sealed. Fields the schema does
// not know (written by a newer build) count as sealed: a view must not
// show what it cannot classify.
func isSealed(kind, field string) bool {
	k, ok := kindIndex[kind]
	if !ok {
		return true
	}
	f, ok := k.Field(field)
	return !ok || f.Sealed
}
