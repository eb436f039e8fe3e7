// Package auth holds Arina's credentials: the MQTT users file (bcrypt password hashes
// and per-user topic ACLs) and the HTTP bearer tokens file (SHA-256 hashes of the
// tokens and their scopes). It parses and validates both files strictly, answers "may
// this client connect / publish / subscribe" and "which token is this", and keeps the
// current version of each file for reloading on SIGHUP. It knows MQTT topic filter
// semantics but nothing of the broker or of HTTP: broker and api build on it.
//
// # Users file
//
//	users:
//	  - username: badge-reader-1
//	    password_hash: "$2a$10$..."   # bcrypt; `arina passwd` prints one
//	    acl:
//	      - topic: "kitchen/+/active"  # an MQTT filter; %u and %c stand for username and client id
//	        access: write              # read | write | readwrite | deny
//
// ACL decisions (Users.Allow) deny by default: a matching deny rule wins, else a
// matching rule granting the access allows, else the access is denied. A rule matches
// a topic with MQTT filter semantics, so '+' and '#' in a rule's first level do not
// match topics starting with '$'. When the topic is itself a filter (a SUBSCRIBE), a
// rule matches it when it matches every topic the filter can match, so "kitchen/#"
// allows subscribing to "kitchen/+/active" but "kitchen/+/active" does not allow "#".
// A subscription that a deny rule only partly overlaps is allowed; the broker checks
// every delivered message again, so the denied topics are still never delivered.
//
// %u and %c are replaced by the username and the client id. A value that is empty,
// starts with '$' or contains '+', '#', '/' or NUL could widen a rule (wildcard
// injection), so then a granting rule using it never matches and a deny rule using it
// always matches: the decision fails closed. Client ids are chosen by the client, so a
// %c rule narrows what one connection may do; it does not identify a device.
//
// # Tokens file
//
//	tokens:
//	  - name: line-app
//	    sha256: "<hex sha256 of the token>"   # `arina token` prints a new token and its hash
//	    scopes: [write, read]
//
// Tokens.Check hashes the presented token and compares it with every entry in constant
// time; the file never holds a usable token.
//
// # Reloading
//
// UsersFile and TokensFile hold the current parse of their file behind an atomic
// pointer. Reload parses the file again and swaps it in only when it is valid, so a
// broken edit keeps the previous version in force. Callers read the current version on
// every decision, so a reload takes effect for connections already open.
package auth
