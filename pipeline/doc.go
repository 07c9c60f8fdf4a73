// Package pipeline holds the types every stage of portcullis shares: the
// [Session] that flows through a rule, the one-method stage interfaces
// ([Authenticator], [Authorizer], [Mutator], [ErrorHandler]), the typed
// [Error] that carries its HTTP status, the handler registry and the strict
// configuration decoding each handler uses when rules load, whose refusals
// are typed and name their key ([KeyError], [UnknownKeyError], [KeyPath]),
// and the contract between the rule set and the server of long-lived
// channels ([WebSocketPolicy], [Admission], [ChannelRule], [ChannelRules]).
//
// Stage packages (authenticators, authorizers, mutators, errorhandlers)
// import this package and never each other; the proxy never imports a
// concrete handler.
package pipeline
