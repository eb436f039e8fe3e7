package auth

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// allowCase is one Allow question for user "u" (see usersWithRules).
type allowCase struct {
	rules    []string // "access topic"
	clientID string
	topic    string
	access   Access
	want     bool
}

// allowCases are the ACL table, shared with the fuzz seeds.
var allowCases = map[string]allowCase{
	// Deny by default.
	"NoRules":          {nil, "c", "a", Write, false},
	"NoMatchingRule":   {[]string{"readwrite a/b"}, "c", "a/c", Write, false},
	"LiteralWrite":     {[]string{"write kitchen/stove/active"}, "c", "kitchen/stove/active", Write, true},
	"WriteOnlyNoRead":  {[]string{"write a"}, "c", "a", Read, false},
	"ReadOnlyNoWrite":  {[]string{"read a"}, "c", "a", Write, false},
	"ReadWriteRead":    {[]string{"readwrite a"}, "c", "a", Read, true},
	"ReadWriteWrite":   {[]string{"readwrite a"}, "c", "a", Write, true},
	"CaseSensitive":    {[]string{"readwrite Kitchen"}, "c", "kitchen", Write, false},
	"EmptyLevels":      {[]string{"write a//b"}, "c", "a//b", Write, true},
	"TrailingSlash":    {[]string{"write a"}, "c", "a/", Write, false},
	"BothAccessDenied": {[]string{"readwrite a"}, "c", "a", Read | Write, false},
	"NoAccessDenied":   {[]string{"readwrite a"}, "c", "a", 0, false},

	// Wildcards in rules.
	"PlusOneLevel":      {[]string{"write kitchen/+/active"}, "c", "kitchen/stove-3/active", Write, true},
	"PlusEmptyLevel":    {[]string{"write kitchen/+/active"}, "c", "kitchen//active", Write, true},
	"PlusNotTwoLevels":  {[]string{"write kitchen/+/active"}, "c", "kitchen/a/b/active", Write, false},
	"HashBelow":         {[]string{"write kitchen/#"}, "c", "kitchen/a/b", Write, true},
	"HashParent":        {[]string{"write kitchen/#"}, "c", "kitchen", Write, true},
	"HashNotSibling":    {[]string{"write kitchen/#"}, "c", "kitchens/a", Write, false},
	"HashAll":           {[]string{"write #"}, "c", "any/thing", Write, true},
	"PlusHashOneLevel":  {[]string{"write +/#"}, "c", "a", Write, true},
	"HashNotDollar":     {[]string{"readwrite #"}, "c", "$SYS/broker/uptime", Read, false},
	"PlusNotDollar":     {[]string{"readwrite +/broker/uptime"}, "c", "$SYS/broker/uptime", Read, false},
	"DollarLiteral":     {[]string{"read $SYS/#"}, "c", "$SYS/broker/uptime", Read, true},
	"DollarDeeperPlus":  {[]string{"read $SYS/+/uptime"}, "c", "$SYS/broker/uptime", Read, true},
	"DollarNotFirst":    {[]string{"read a/+"}, "c", "a/$x", Read, true},
	"WriteToFilter":     {[]string{"readwrite #"}, "c", "a/+", Write, false},
	"EmptyTopic":        {[]string{"readwrite #"}, "c", "", Read, false},
	"InvalidFilter":     {[]string{"readwrite #"}, "c", "a/#/b", Read, false},
	"NulTopic":          {[]string{"readwrite #"}, "c", "a\x00b", Write, false},
	"SharedUnstripped":  {[]string{"readwrite #"}, "c", "$share/g/a", Read, false},
	"NonUTF8Topic":      {[]string{"readwrite #"}, "c", "a/\xff", Write, false},
	"LiteralVsWildcard": {[]string{"read a/b"}, "c", "a/+", Read, false},

	// Deny wins, wherever it is.
	"DenyAfterAllow":   {[]string{"readwrite kitchen/#", "deny kitchen/secret/#"}, "c", "kitchen/secret/x", Write, false},
	"DenyBeforeAllow":  {[]string{"deny kitchen/secret/#", "readwrite kitchen/#"}, "c", "kitchen/secret/x", Read, false},
	"DenyOtherTopic":   {[]string{"readwrite kitchen/#", "deny kitchen/secret/#"}, "c", "kitchen/open/x", Write, true},
	"DenyBothAccesses": {[]string{"readwrite a", "deny a"}, "c", "a", Read, false},

	// Subscriptions: a rule must match every topic the filter can match.
	"SubCovered":          {[]string{"read kitchen/#"}, "c", "kitchen/+/active", Read, true},
	"SubCoveredHash":      {[]string{"read kitchen/#"}, "c", "kitchen/#", Read, true},
	"SubSame":             {[]string{"read kitchen/+/active"}, "c", "kitchen/+/active", Read, true},
	"SubWider":            {[]string{"read kitchen/+/active"}, "c", "kitchen/#", Read, false},
	"SubAll":              {[]string{"read kitchen/#"}, "c", "#", Read, false},
	"SubPlusVsLiteral":    {[]string{"read kitchen/stove/active"}, "c", "kitchen/+/active", Read, false},
	"SubPlusHashCovers":   {[]string{"read +/#"}, "c", "#", Read, true},
	"SubDeepPlusHash":     {[]string{"read a/+/#"}, "c", "a/#", Read, false}, // a/# matches "a"
	"SubHashVsPlus":       {[]string{"read a/+"}, "c", "a/#", Read, false},
	"SubLongerFilter":     {[]string{"read a/+"}, "c", "a/+/b", Read, false},
	"SubDollarHash":       {[]string{"read #"}, "c", "$SYS/#", Read, false},
	"SubHashLeavesDollar": {[]string{"read #"}, "c", "#", Read, true},
	"SubDenyPartial":      {[]string{"read kitchen/#", "deny kitchen/secret/#"}, "c", "kitchen/#", Read, true},
	"SubDenyCovers":       {[]string{"read kitchen/#", "deny kitchen/secret/#"}, "c", "kitchen/secret/+", Read, false},

	// %u and %c.
	"UserRule":            {[]string{"readwrite users/%u/#"}, "c", "users/u/x", Write, true},
	"UserRuleOther":       {[]string{"readwrite users/%u/#"}, "c", "users/v/x", Write, false},
	"ClientRule":          {[]string{"write devices/%c/state"}, "dev7", "devices/dev7/state", Write, true},
	"ClientRuleOther":     {[]string{"write devices/%c/state"}, "dev7", "devices/dev8/state", Write, false},
	"ClientInLevel":       {[]string{"write devices/id-%c-%u"}, "dev7", "devices/id-dev7-u", Write, true},
	"ClientInLevelWrong":  {[]string{"write devices/id-%c-%u"}, "dev7", "devices/id-dev7-v", Write, false},
	"ClientPlusInjection": {[]string{"write devices/%c/state"}, "+", "devices/+/state", Read, false},
	"ClientPlusLiteral":   {[]string{"write devices/%c/state"}, "+", "devices/x/state", Write, false},
	"ClientHashInjection": {[]string{"read devices/%c"}, "#", "devices/#", Read, false},
	"ClientSlash":         {[]string{"write devices/%c/state"}, "a/b", "devices/a/b/state", Write, false},
	"ClientDollar":        {[]string{"read %c/#"}, "$SYS", "$SYS/x", Read, false},
	"ClientEmpty":         {[]string{"write devices/%c/state"}, "", "devices//state", Write, false},
	"ClientRuleVsPlus":    {[]string{"read devices/%c/state"}, "dev7", "devices/+/state", Read, false},
	// A deny rule that cannot be filled in safely fails closed.
	"DenyUnsafeClient": {[]string{"write devices/#", "deny devices/%c/config"}, "x/y", "devices/z/other", Write, false},
	"DenySafeClient":   {[]string{"write devices/#", "deny devices/%c/config"}, "x", "devices/z/config", Write, true},
	"DenyOwnClient":    {[]string{"write devices/#", "deny devices/%c/config"}, "x", "devices/x/config", Write, false},
}

func TestUsers_Allow(t *testing.T) {
	for name, tt := range allowCases {
		t.Run(name, func(t *testing.T) {
			us := MustParseUsers(t, usersWithRules(tt.rules...))
			if got := us.Allow("u", tt.clientID, tt.topic, tt.access); got != tt.want {
				t.Fatalf("rules %q: Allow(u, %q, %q, %v) = %v, want %v", tt.rules, tt.clientID, tt.topic, tt.access, got, tt.want)
			}
			if refAllow(tt.rules, "u", tt.clientID, tt.topic, tt.access) != tt.want && !strings.ContainsAny(tt.topic, "+#") {
				t.Fatalf("the reference matcher disagrees with the table")
			}
		})
	}
}

func TestUsers_AllowUnknownUser(t *testing.T) {
	us := MustParseUsers(t, usersWithRules("readwrite #"))
	if us.Allow("v", "c", "a", Write) {
		t.Fatal("unknown user allowed")
	}
	var nilUsers *Users
	if nilUsers.Allow("u", "c", "a", Write) {
		t.Fatal("nil Users allows")
	}
}

// TestAccess_String checks the names the metrics and logs use.
func TestAccess_String(t *testing.T) {
	for a, want := range map[Access]string{Read: "read", Write: "write", Read | Write: "readwrite", 0: "access(0)"} {
		if got := a.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", a, got, want)
		}
	}
}

// refAllow is a plain reference for Allow on topics (no wildcards in the topic): split
// both into levels, substitute, match.
func refAllow(rules []string, user, client, topic string, access Access) bool {
	if topic == "" || len(topic) > maxTopicLen || !utf8.ValidString(topic) || strings.ContainsAny(topic, "+#\x00") || (access != Read && access != Write) {
		return false
	}
	granted := false
	for _, r := range rules {
		a, filter, _ := strings.Cut(r, " ")
		grant, deny, err := parseAccess(a)
		if err != nil {
			return false
		}
		unsafe := (strings.Contains(filter, "%u") && unsafeValue(user)) || (strings.Contains(filter, "%c") && unsafeValue(client))
		if unsafe {
			if deny {
				return false
			}
			continue
		}
		filter = strings.ReplaceAll(strings.ReplaceAll(filter, "%u", user), "%c", client)
		if !refMatch(filter, topic) {
			continue
		}
		if deny {
			return false
		}
		if grant&access != 0 {
			granted = true
		}
	}
	return granted
}

// refMatch is MQTT topic matching (4.7), written as plainly as possible.
func refMatch(filter, topic string) bool {
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$") && (fl[0] == "+" || fl[0] == "#") {
		return false
	}
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) {
			return false
		}
		if f != "+" && f != tl[i] {
			return false
		}
	}
	return len(fl) == len(tl)
}

func ExampleUsers_Allow() {
	us, err := ParseUsers([]byte(`
users:
  - username: badge-reader-1
    password_hash: "` + testHash + `"
    acl:
      - {topic: "kitchen/+/active", access: write}
      - {topic: "devices/%c/#", access: readwrite}
      - {topic: "kitchen/secret/#", access: deny}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(us.Allow("badge-reader-1", "b1", "kitchen/stove-3/active", Write))
	fmt.Println(us.Allow("badge-reader-1", "b1", "kitchen/secret/active", Write))
	fmt.Println(us.Allow("badge-reader-1", "b1", "devices/b1/#", Read))
	fmt.Println(us.Allow("badge-reader-1", "b1", "devices/b2/state", Write))
	// Output:
	// true
	// false
	// true
	// false
}
