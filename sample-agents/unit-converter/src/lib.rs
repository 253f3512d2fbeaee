//! Unit converter: converts between units of length, mass, time, volume, area,
//! speed, temperature, data, energy and pressure, and lists the units it knows.

use mercato_sdk::{Agent, Capability, Deserialize, Error, JsonSchema, Serialize};

/// A quantity to convert.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "mercato_sdk::schemars")]
struct ConvertInput {
    /// The number to convert.
    value: f64,
    /// Unit symbol to convert from (for example `km`, `lb`, `degF`, `GiB`).
    from: String,
    /// Unit symbol to convert to.
    to: String,
}

/// The converted quantity.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct ConvertOutput {
    /// The converted number, rounded to 10 significant digits.
    value: f64,
    /// Unit converted to.
    unit: String,
    /// The physical dimension both units share.
    dimension: String,
}

/// Which units to list.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "mercato_sdk::schemars")]
struct ListInput {
    /// Only units of this dimension (for example `length`); all when absent.
    #[serde(default)]
    dimension: Option<String>,
}

/// One known unit.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct UnitInfo {
    /// Symbol used in `from` and `to`.
    symbol: String,
    /// Full name.
    name: String,
    /// Dimension.
    dimension: String,
}

/// The known units.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct ListOutput {
    /// Units, grouped by dimension.
    units: Vec<UnitInfo>,
}

/// A unit: `si = value * factor + offset` converts to the dimension's base unit.
struct Unit {
    symbol: &'static str,
    name: &'static str,
    dimension: &'static str,
    factor: f64,
    offset: f64,
}

const fn u(symbol: &'static str, name: &'static str, dimension: &'static str, factor: f64) -> Unit {
    Unit {
        symbol,
        name,
        dimension,
        factor,
        offset: 0.0,
    }
}

const UNITS: &[Unit] = &[
    u("m", "metre", "length", 1.0),
    u("km", "kilometre", "length", 1000.0),
    u("cm", "centimetre", "length", 0.01),
    u("mm", "millimetre", "length", 0.001),
    u("in", "inch", "length", 0.0254),
    u("ft", "foot", "length", 0.3048),
    u("yd", "yard", "length", 0.9144),
    u("mi", "mile", "length", 1609.344),
    u("nmi", "nautical mile", "length", 1852.0),
    u("kg", "kilogram", "mass", 1.0),
    u("g", "gram", "mass", 0.001),
    u("mg", "milligram", "mass", 1e-6),
    u("t", "tonne", "mass", 1000.0),
    u("lb", "pound", "mass", 0.453_592_37),
    u("oz", "ounce", "mass", 0.028_349_523_125),
    u("st", "stone", "mass", 6.350_293_18),
    u("s", "second", "time", 1.0),
    u("ms", "millisecond", "time", 0.001),
    u("min", "minute", "time", 60.0),
    u("h", "hour", "time", 3600.0),
    u("d", "day", "time", 86_400.0),
    u("wk", "week", "time", 604_800.0),
    u("l", "litre", "volume", 0.001),
    u("ml", "millilitre", "volume", 1e-6),
    u("m3", "cubic metre", "volume", 1.0),
    u("gal", "US gallon", "volume", 0.003_785_411_784),
    u("qt", "US quart", "volume", 0.000_946_352_946),
    u("floz", "US fluid ounce", "volume", 0.000_029_573_529_562_5),
    u("m2", "square metre", "area", 1.0),
    u("km2", "square kilometre", "area", 1e6),
    u("ha", "hectare", "area", 1e4),
    u("acre", "acre", "area", 4_046.856_422_4),
    u("ft2", "square foot", "area", 0.092_903_04),
    u("m/s", "metre per second", "speed", 1.0),
    u("km/h", "kilometre per hour", "speed", 1000.0 / 3600.0),
    u("mph", "mile per hour", "speed", 0.447_04),
    u("kn", "knot", "speed", 1852.0 / 3600.0),
    Unit {
        symbol: "K",
        name: "kelvin",
        dimension: "temperature",
        factor: 1.0,
        offset: 0.0,
    },
    Unit {
        symbol: "degC",
        name: "degree Celsius",
        dimension: "temperature",
        factor: 1.0,
        offset: 273.15,
    },
    Unit {
        symbol: "degF",
        name: "degree Fahrenheit",
        dimension: "temperature",
        factor: 5.0 / 9.0,
        offset: 273.15 - 32.0 * 5.0 / 9.0,
    },
    u("B", "byte", "data", 1.0),
    u("kB", "kilobyte", "data", 1e3),
    u("MB", "megabyte", "data", 1e6),
    u("GB", "gigabyte", "data", 1e9),
    u("TB", "terabyte", "data", 1e12),
    u("KiB", "kibibyte", "data", 1024.0),
    u("MiB", "mebibyte", "data", 1_048_576.0),
    u("GiB", "gibibyte", "data", 1_073_741_824.0),
    u("bit", "bit", "data", 0.125),
    u("J", "joule", "energy", 1.0),
    u("kJ", "kilojoule", "energy", 1000.0),
    u("cal", "calorie", "energy", 4.184),
    u("kcal", "kilocalorie", "energy", 4184.0),
    u("Wh", "watt-hour", "energy", 3600.0),
    u("kWh", "kilowatt-hour", "energy", 3.6e6),
    u("Pa", "pascal", "pressure", 1.0),
    u("kPa", "kilopascal", "pressure", 1000.0),
    u("bar", "bar", "pressure", 1e5),
    u("atm", "standard atmosphere", "pressure", 101_325.0),
    u(
        "psi",
        "pound per square inch",
        "pressure",
        6_894.757_293_168,
    ),
];

fn unit(symbol: &str) -> Result<&'static Unit, Error> {
    UNITS
        .iter()
        .find(|u| u.symbol == symbol)
        .or_else(|| UNITS.iter().find(|u| u.symbol.eq_ignore_ascii_case(symbol)))
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "unknown unit `{symbol}`; list-units shows the known ones"
            ))
        })
}

/// Rounds to 10 significant digits so that results read as people expect
/// (`1.609344`, not `1.6093440000000001`).
fn round_significant(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let digits = 10 - x.abs().log10().ceil() as i32;
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

fn convert(input: ConvertInput) -> Result<ConvertOutput, Error> {
    if !input.value.is_finite() {
        return Err(Error::InvalidInput("value must be a finite number".into()));
    }
    let (from, to) = (unit(&input.from)?, unit(&input.to)?);
    if from.dimension != to.dimension {
        return Err(Error::InvalidInput(format!(
            "cannot convert {} ({}) to {} ({})",
            from.symbol, from.dimension, to.symbol, to.dimension
        )));
    }
    let base = input.value * from.factor + from.offset;
    let value = round_significant((base - to.offset) / to.factor);
    Ok(ConvertOutput {
        value,
        unit: to.symbol.into(),
        dimension: to.dimension.into(),
    })
}

fn list_units(input: ListInput) -> Result<ListOutput, Error> {
    let units: Vec<UnitInfo> = UNITS
        .iter()
        .filter(|u| input.dimension.as_deref().is_none_or(|d| d == u.dimension))
        .map(|u| UnitInfo {
            symbol: u.symbol.into(),
            name: u.name.into(),
            dimension: u.dimension.into(),
        })
        .collect();
    if units.is_empty() {
        return Err(Error::InvalidInput("no units of that dimension".into()));
    }
    Ok(ListOutput { units })
}

fn convert_examples() -> Vec<(ConvertInput, ConvertOutput)> {
    let c = |value: f64, from: &str, to: &str, out: f64, dimension: &str| {
        (
            ConvertInput {
                value,
                from: from.into(),
                to: to.into(),
            },
            ConvertOutput {
                value: out,
                unit: to.into(),
                dimension: dimension.into(),
            },
        )
    };
    vec![
        c(1.0, "mi", "km", 1.609344, "length"),
        c(212.0, "degF", "degC", 100.0, "temperature"),
        c(1.0, "GiB", "MB", 1073.741824, "data"),
    ]
}

fn list_examples() -> Vec<(ListInput, ListOutput)> {
    vec![(
        ListInput {
            dimension: Some("pressure".into()),
        },
        ListOutput {
            units: ["Pa", "kPa", "bar", "atm", "psi"]
                .iter()
                .filter_map(|s| unit(s).ok())
                .map(|u| UnitInfo {
                    symbol: u.symbol.into(),
                    name: u.name.into(),
                    dimension: u.dimension.into(),
                })
                .collect(),
        },
    )]
}

struct UnitConverter;

impl Agent for UnitConverter {
    const NAME: &'static str = "unit-converter";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn capabilities() -> Vec<Capability> {
        vec![
            Capability::new(
                "convert",
                "Converts a quantity between units of length, mass, time, volume, area, speed, \
                 temperature, data size, energy and pressure: kilometres and miles, kilograms and \
                 pounds, Celsius and Fahrenheit, litres and gallons, gigabytes and gibibytes \
                 (metric, imperial and binary units).",
                convert,
            )
            .category("utilities")
            .tags(&[
                "units",
                "conversion",
                "metric",
                "imperial",
                "temperature",
                "measurement",
            ])
            .examples(convert_examples),
            Capability::new(
                "list-units",
                "Lists the units the converter knows, by dimension.",
                list_units,
            )
            .category("utilities")
            .tags(&["units", "reference"])
            .examples(list_examples),
        ]
    }
}

mercato_sdk::export_agent!(UnitConverter);
