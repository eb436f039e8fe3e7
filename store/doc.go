// Package store holds Arina's state: for every (content, reaction) the set of users that
// added the reaction and have not removed it.
//
// A Store is mutated only through Apply, by the single ingest writer, one batch at a
// time; queries may run concurrently with it. Memory is the in-memory implementation;
// store/durable (Pebble) and store/redis are the others, one package per backend. The
// conformance suite in store/storetest is run by every implementation.
//
// Semantics: an add of a user already in the set and a remove of a user not in it change
// nothing, so a count is never negative. A remove on a (content, reaction) never seen
// leaves nothing behind: the content stays unknown. A reaction that once held users
// stays listed, with count 0, after they all leave.
package store
