package visibility

// RegisterThese is Register for other attributes, for the tests of package
// visibility_test (which start a server through a package importing this
// one).
var RegisterThese = register
