//! A `nom` parser for the Jute record language (`zookeeper.jute`).
//!
//! The grammar is the subset Apache ZooKeeper's own IDL uses: `module a.b.c { class X { T f; } }`
//! with the primitive types `byte boolean int long float double buffer ustring`, `vector<T>`,
//! `map<K, V>` and references to other records, plain or fully qualified. `//` and `/* */`
//! comments are allowed anywhere whitespace is. This file is compiled twice: by `build.rs` to
//! generate the records, and by the library, where its tests live.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_until, take_while, take_while1};
use nom::character::complete::{char, multispace1};
use nom::combinator::{all_consuming, cut, map, recognize, value};
use nom::multi::{many0, separated_list1};
use nom::sequence::{delimited, pair, preceded, terminated, tuple};
use nom::IResult;

/// One `module` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Dotted name, e.g. `org.apache.zookeeper.data`.
    pub name: String,
    pub classes: Vec<Class>,
}

/// One `class` (record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    pub name: String,
    pub fields: Vec<Field>,
}

/// One field of a record, in wire order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub ty: Type,
}

/// A Jute type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    Byte,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Buffer,
    UString,
    Vector(Box<Type>),
    Map(Box<Type>, Box<Type>),
    /// A record, by its (possibly dotted) name as written.
    Record(String),
}

/// Whitespace and comments.
fn ws(input: &str) -> IResult<&str, ()> {
    value(
        (),
        many0(alt((
            value((), multispace1),
            value((), pair(tag("//"), take_while(|c| c != '\n'))),
            value((), tuple((tag("/*"), take_until("*/"), tag("*/")))),
        ))),
    )(input)
}

fn token<'a, O>(
    inner: impl FnMut(&'a str) -> IResult<&'a str, O>,
) -> impl FnMut(&'a str) -> IResult<&'a str, O> {
    preceded(ws, inner)
}

fn ident(input: &str) -> IResult<&str, &str> {
    recognize(pair(
        take_while1(|c: char| c.is_ascii_alphabetic() || c == '_'),
        take_while(|c: char| c.is_ascii_alphanumeric() || c == '_'),
    ))(input)
}

fn dotted(input: &str) -> IResult<&str, &str> {
    recognize(separated_list1(char('.'), ident))(input)
}

fn keyword<'a>(word: &'static str) -> impl FnMut(&'a str) -> IResult<&'a str, &'a str> {
    // A keyword must not be the prefix of a longer identifier (`intx`, `bufferSize`).
    move |input: &'a str| {
        let (rest, id) = dotted(input)?;
        if id == word {
            Ok((rest, id))
        } else {
            Err(nom::Err::Error(nom::error::Error::new(
                input,
                nom::error::ErrorKind::Tag,
            )))
        }
    }
}

fn ty(input: &str) -> IResult<&str, Type> {
    token(alt((
        map(
            preceded(
                keyword("vector"),
                delimited(token(char('<')), ty, token(char('>'))),
            ),
            |t| Type::Vector(Box::new(t)),
        ),
        map(
            preceded(
                keyword("map"),
                delimited(
                    token(char('<')),
                    pair(terminated(ty, token(char(','))), ty),
                    token(char('>')),
                ),
            ),
            |(k, v)| Type::Map(Box::new(k), Box::new(v)),
        ),
        map(dotted, |name: &str| match name {
            "byte" => Type::Byte,
            "boolean" => Type::Boolean,
            "int" => Type::Int,
            "long" => Type::Long,
            "float" => Type::Float,
            "double" => Type::Double,
            "buffer" => Type::Buffer,
            "ustring" => Type::UString,
            other => Type::Record(other.to_string()),
        }),
    )))(input)
}

fn field(input: &str) -> IResult<&str, Field> {
    map(
        terminated(pair(ty, token(ident)), token(char(';'))),
        |(ty, name)| Field {
            name: name.to_string(),
            ty,
        },
    )(input)
}

fn class(input: &str) -> IResult<&str, Class> {
    map(
        tuple((
            token(keyword("class")),
            cut(token(ident)),
            cut(delimited(token(char('{')), many0(field), token(char('}')))),
        )),
        |(_, name, fields)| Class {
            name: name.to_string(),
            fields,
        },
    )(input)
}

fn module(input: &str) -> IResult<&str, Module> {
    map(
        tuple((
            token(keyword("module")),
            cut(token(dotted)),
            cut(delimited(token(char('{')), many0(class), token(char('}')))),
        )),
        |(_, name, classes)| Module {
            name: name.to_string(),
            classes,
        },
    )(input)
}

/// Parses a whole `.jute` file. The error names the line where parsing stopped.
pub fn parse(text: &str) -> Result<Vec<Module>, String> {
    match all_consuming(terminated(many0(module), ws))(text) {
        Ok((_, modules)) => Ok(modules),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
            let consumed = text.len() - e.input.len();
            let line = text[..consumed].matches('\n').count() + 1;
            let near: String = e.input.chars().take(40).collect();
            Err(format!("syntax error at line {line} near {near:?}"))
        }
        Err(nom::Err::Incomplete(_)) => Err("unexpected end of input".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modules_classes_and_types() {
        let text = "// header\nmodule a.b { /* c */ class X { int i; vector<a.b.Y> ys; \
                    map<ustring, long> m; buffer data; } class Y { boolean b; } }";
        let modules = parse(text).expect("parse");
        assert_eq!(modules.len(), 1);
        assert_eq!(modules[0].name, "a.b");
        let x = &modules[0].classes[0];
        assert_eq!(x.name, "X");
        assert_eq!(
            x.fields[1].ty,
            Type::Vector(Box::new(Type::Record("a.b.Y".into())))
        );
        assert_eq!(
            x.fields[2].ty,
            Type::Map(Box::new(Type::UString), Box::new(Type::Long))
        );
        assert_eq!(x.fields[3].ty, Type::Buffer);
    }

    #[test]
    fn identifiers_that_start_with_a_keyword_are_records() {
        let modules = parse("module m { class A { intx a; } }").expect("parse");
        assert_eq!(
            modules[0].classes[0].fields[0].ty,
            Type::Record("intx".into())
        );
    }

    #[test]
    fn reports_the_line_of_a_syntax_error() {
        let err = parse("module m {\n class A {\n int ; } }").expect_err("must fail");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn the_real_idl_parses() {
        let modules = parse(include_str!("../zookeeper.jute")).expect("parse");
        let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
        assert!(names.contains(&"org.apache.zookeeper.proto"));
        assert!(names.contains(&"org.apache.zookeeper.txn"));
    }
}
