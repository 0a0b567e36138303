"""The viewer's pages (HTML, JS, CSS). A package only so that the build ships these files as package data."""
