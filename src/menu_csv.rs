//! `tillmesh menu import`'s file: a menu as CSV, read and checked line by line before anything
//! is sent.
//!
//! The first row names the columns, in any order: `sku`, `name`, `category`, `price`,
//! `tax_class`, `available`. Fields are separated by commas; a field holding a comma, a quote or
//! a line break is quoted (`"Soup, large"`, a quote inside doubled: `"12"" pizza"`), as
//! spreadsheets write CSV. `price` is a decimal in the shop's currency (`4.50`, at most two
//! decimals); `available` is `true`/`false` (or `yes`/`no`, `1`/`0`). Empty lines are skipped.

use std::collections::BTreeMap;
use std::fmt;

use tillmesh_core::edit::limits;
use tillmesh_core::{Amount, NewMenuItem};

/// The columns a menu file has, as its header names them.
pub(crate) const COLUMNS: [&str; 6] = ["sku", "name", "category", "price", "tax_class", "available"];

/// What is wrong in a menu file, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CsvError {
    /// The line (from 1) the row starts on.
    pub(crate) line: usize,
    /// The column (from 1) and its header name, when one field is at fault.
    pub(crate) column: Option<(usize, String)>,
    /// What is wrong.
    pub(crate) problem: String,
}

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some((number, name)) => {
                write!(f, "line {}, column {number} ({name}): {}", self.line, self.problem)
            }
            None => write!(f, "line {}: {}", self.line, self.problem),
        }
    }
}

/// Reads a whole menu file: every error found (each with its line and column), or the items.
pub(crate) fn read_menu(text: &str) -> Result<Vec<NewMenuItem>, Vec<CsvError>> {
    let rows = match rows(text) {
        Ok(rows) => rows,
        Err(error) => return Err(vec![error]),
    };
    let mut rows = rows.into_iter();
    let Some((header_line, header)) = rows.next() else {
        return Err(vec![CsvError {
            line: 1,
            column: None,
            problem: format!("empty file: the first line names the columns ({})", COLUMNS.join(",")),
        }]);
    };
    let positions = match header_positions(header_line, &header) {
        Ok(positions) => positions,
        Err(error) => return Err(vec![error]),
    };
    let mut errors = Vec::new();
    let mut items = Vec::new();
    let mut first_line_of: BTreeMap<String, usize> = BTreeMap::new();
    for (line, fields) in rows {
        if fields.len() != header.len() {
            errors.push(CsvError {
                line,
                column: None,
                problem: format!("{} fields, the header has {}", fields.len(), header.len()),
            });
            continue;
        }
        let sku = positions.get("sku").and_then(|index| fields.get(*index)).map_or("", |sku| sku.trim());
        let first = first_line_of.get(sku).copied();
        first_line_of.entry(sku.to_string()).or_insert(line);
        match (item(line, &fields, &positions), first) {
            (Ok(item), None) => items.push(item),
            (Ok(item), Some(first)) => {
                errors.push(at(
                    line,
                    &positions,
                    "sku",
                    format!("SKU {:?} is on line {first} too", item.sku),
                ));
            }
            (Err(error), _) => errors.push(error),
        }
    }
    if items.len() > limits::MENU_ITEMS_MAX {
        errors.push(CsvError {
            line: header_line,
            column: None,
            problem: format!("{} items: a menu holds at most {}", items.len(), limits::MENU_ITEMS_MAX),
        });
    }
    if errors.is_empty() { Ok(items) } else { Err(errors) }
}

/// Where each column is: its index in a row, by name.
type Positions = BTreeMap<&'static str, usize>;

fn header_positions(line: usize, header: &[String]) -> Result<Positions, CsvError> {
    let mut positions = Positions::new();
    for (index, name) in header.iter().enumerate() {
        let Some(column) = COLUMNS.iter().find(|column| **column == name.trim()) else {
            return Err(CsvError {
                line,
                column: Some((index + 1, name.clone())),
                problem: format!("unknown column: the columns are {}", COLUMNS.join(",")),
            });
        };
        if positions.insert(column, index).is_some() {
            return Err(CsvError {
                line,
                column: Some((index + 1, name.clone())),
                problem: "named twice".into(),
            });
        }
    }
    let missing: Vec<&str> =
        COLUMNS.iter().copied().filter(|column| !positions.contains_key(column)).collect();
    if !missing.is_empty() {
        return Err(CsvError {
            line,
            column: None,
            problem: format!("missing column(s): {}", missing.join(", ")),
        });
    }
    Ok(positions)
}

/// An error at one column of a row.
fn at(line: usize, positions: &Positions, column: &'static str, problem: String) -> CsvError {
    let index = positions.get(column).copied().unwrap_or_default();
    CsvError { line, column: Some((index + 1, column.to_string())), problem }
}

/// One row as an item, checked as HQ checks it.
fn item(line: usize, fields: &[String], positions: &Positions) -> Result<NewMenuItem, CsvError> {
    let field =
        |column: &str| positions.get(column).and_then(|index| fields.get(*index)).map_or("", |f| f.trim());
    let price =
        Amount::parse(field("price")).map_err(|error| at(line, positions, "price", error.to_string()))?;
    let available = match field("available").to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => true,
        "false" | "no" | "0" => false,
        other => {
            return Err(at(
                line,
                positions,
                "available",
                format!("{other:?} is not true or false (yes/no, 1/0)"),
            ));
        }
    };
    let item = NewMenuItem {
        sku: field("sku").to_string(),
        name: field("name").to_string(),
        category: field("category").to_string(),
        tax_class: field("tax_class").to_string(),
        price,
        available,
    };
    item.check().map_err(|problem| {
        let column = if problem.field == "taxClass" { "tax_class" } else { problem.field };
        let column = COLUMNS.iter().find(|name| **name == column).copied().unwrap_or("sku");
        at(line, positions, column, problem.problem)
    })?;
    Ok(item)
}

/// The rows of a CSV text, each with the line it starts on; empty lines left out.
fn rows(text: &str) -> Result<Vec<(usize, Vec<String>)>, CsvError> {
    let mut rows = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while chars.peek().is_some() {
        let start = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut was_quoted = false;
        loop {
            let Some(c) = chars.next() else {
                if quoted {
                    return Err(CsvError {
                        line: start,
                        column: None,
                        problem: "a quoted field is not closed".into(),
                    });
                }
                break;
            };
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => {
                    if c == '\n' {
                        line += 1;
                    }
                    field.push(c);
                }
                (false, '"') if field.is_empty() && !was_quoted => {
                    quoted = true;
                    was_quoted = true;
                }
                (false, ',') => {
                    fields.push(std::mem::take(&mut field));
                    was_quoted = false;
                }
                (false, '\r') if chars.peek() == Some(&'\n') => {}
                (false, '\n') => {
                    line += 1;
                    break;
                }
                (false, c) => field.push(c),
            }
        }
        fields.push(field);
        let empty = fields.len() == 1 && fields[0].trim().is_empty() && !was_quoted;
        if !empty {
            rows.push((start, fields));
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_menu_with_quotes_and_any_column_order() {
        let text = "name,sku,category,price,tax_class,available\r\n\
                    \"Soup, large\",SOUP-L,Soups,5.50,reduced,true\n\
                    \n\
                    \"12\"\" pizza\",PIZZA,Mains,11,standard,no\n";
        let items = read_menu(text).expect("valid");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].name, "Soup, large");
        assert_eq!(items[0].price, Amount::from_minor(550));
        assert!(items[0].available);
        assert_eq!(items[1].name, "12\" pizza");
        assert_eq!(items[1].price, Amount::from_minor(1100));
        assert!(!items[1].available);
    }

    #[test]
    fn reports_every_error_by_line_and_column() {
        let text = "sku,name,category,price,tax_class,available\n\
                    SOUP,Soup,Soups,4.999,standard,true\n\
                    TEA,,Drinks,2.00,standard,true\n\
                    SOUP,Soup again,Soups,4.00,standard,maybe\n\
                    CAKE,Cake,Desserts,3.00,standard\n\
                    TEA,Tea,Drinks,2.00,standard,true\n";
        let errors: Vec<String> =
            read_menu(text).expect_err("invalid").iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(errors[0].starts_with("line 2, column 4 (price): "), "{errors:?}");
        assert!(errors[1].starts_with("line 3, column 2 (name): "), "{errors:?}");
        assert!(errors[2].starts_with("line 4, column 6 (available): "), "{errors:?}");
        assert_eq!(errors[3], "line 5: 5 fields, the header has 6");
        assert_eq!(errors[4], "line 6, column 1 (sku): SKU \"TEA\" is on line 3 too");
    }

    #[test]
    fn refuses_bad_headers_and_open_quotes() {
        let missing = read_menu("sku,name,price\n").expect_err("missing columns");
        assert_eq!(missing[0].to_string(), "line 1: missing column(s): category, tax_class, available");
        let unknown = read_menu("sku,name,category,price,tax_class,available,colour\n").expect_err("unknown");
        assert!(unknown[0].to_string().starts_with("line 1, column 7 (colour): unknown column"));
        let open = read_menu("sku,name,category,price,tax_class,available\nA,\"Soup,S,1,s,true\n")
            .expect_err("open quote");
        assert_eq!(open[0].to_string(), "line 2: a quoted field is not closed");
    }
}
